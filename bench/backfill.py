"""A backfill's wall time with one Celery worker against two.

    DATABASE_URL=postgres://.../canary_bench CELERY_BROKER_URL=redis://127.0.0.1:6379/15 \
        .venv/bin/python bench/backfill.py [--days 180] [--per-day 20000] [--range-days 10]

The history (`--days` days of `--per-day` predictions, 10 features, two thirds labelled) is
ingested and joined once, and kept. Then, for one worker and for two (each a `celery worker`
process of concurrency 1, PostgreSQL's parallel query off so that the workers are what is
measured), the model's aggregates are deleted and `aggregates_backfill` is queued; the time
runs until every day has its rows. Prints one JSON object on the last line with
`two_worker_speedup` (one worker's time over two workers'; the goal is at least 1.3).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from harness import ROOT, django_setup, frames_ingest, model_delete

NAME = "bench-backfill"
CHUNK_DAYS = 10
GOAL = 1.3


def frames(first_day: int, days: int, per_day: int, start):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(first_day)
    size = days * per_day
    offsets = np.sort(rng.uniform(first_day * 86400, (first_day + days) * 86400, size))
    at = start + pd.to_timedelta(offsets, unit="s")
    score = rng.uniform(0, 1, size).round(4)
    ids = np.char.add(f"b{first_day}-", np.arange(size).astype(str))
    columns = {
        "prediction_id": ids,
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "model_version": "1.0",
        "prediction": (score >= 0.5).astype(int),
        "score": score,
        "segment": rng.choice(["web", "app"], size),
    }
    for j in range(9):
        columns[f"x{j}"] = rng.normal(0, 1, size).round(4)
    columns["plan"] = rng.choice(["basic", "plus", "premium"], size)
    labelled = np.arange(size) % 3 != 0
    outcomes = pd.DataFrame(
        {
            "prediction_id": ids,
            "observed_at": (at + pd.Timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "outcome": (rng.uniform(size=size) < score).astype(int),
        }
    )[labelled]
    return pd.DataFrame(columns), outcomes


def history_ensure(days: int, per_day: int):
    import pandas as pd

    from factory.models import MLModel
    from factory.services import model_create
    from monitoring.pipeline.join import outcomes_join

    label = f"{NAME}-{days}d-{per_day}"
    # The history ends yesterday, inside the raw horizon (older predictions would be expired),
    # and is kept for later runs of the same day.
    start = pd.Timestamp.now("UTC").floor("D") - pd.Timedelta(days=days + 1)
    complete = f"complete from {start:%Y-%m-%d}"
    model = MLModel.objects.filter(name=label, description=complete).first()
    if model is not None:
        return model
    model_delete(label)
    model = model_create(name=label, task="binary_classification", positive_class=1)
    for first in range(0, days, CHUNK_DAYS):
        span = min(CHUNK_DAYS, days - first)
        frames_ingest(model, *frames(first, span, per_day, start))
        log(f"ingested days {first + span} of {days}")
    outcomes_join(model_id=model.pk)
    MLModel.objects.filter(pk=model.pk).update(description=complete)
    return model


def workers_start(count: int, database: str, broker: str) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": broker,
        "PGOPTIONS": "-c max_parallel_workers_per_gather=0",
        "DJANGO_SETTINGS_MODULE": "config.test_settings",
    }
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--concurrency=1",
                "--loglevel=WARNING",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                "-n",
                f"backfill{i}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for i in range(count)
    ]


def backfill_timed(model, workers: int, database: str, broker: str, range_days: int) -> float:
    from django.db import connection

    from config.celery import app
    from monitoring.models import HourlyAggregate, HourlyValue, Period, Sketch
    from monitoring.tasks import aggregates_backfill

    Sketch.objects.filter(model=model).delete()
    HourlyAggregate.objects.filter(model=model).delete()
    HourlyValue.objects.filter(model=model).delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE monitoring_sketch")
        cursor.execute(
            "SELECT count(DISTINCT date_trunc('day', timestamp)) FROM monitoring_prediction "
            "WHERE model_id = %s",
            [model.pk],
        )
        days = cursor.fetchone()[0]
    processes = workers_start(workers, database, broker)
    try:
        time.sleep(5)  # the workers connect before the clock starts
        started = time.perf_counter()
        with app.connection_for_write(broker) as queue:
            aggregates_backfill.apply_async((model.pk, range_days), connection=queue)
        done = Sketch.objects.filter(model=model, period=Period.DAY)
        while done.values("start").distinct().count() < days:
            time.sleep(0.5)
        return time.perf_counter() - started
    finally:
        for process in processes:
            os.killpg(process.pid, 15)
            process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--per-day", type=int, default=20_000)
    parser.add_argument("--range-days", type=int, default=10)
    parser.add_argument(
        "--prepare", action="store_true", help="build and keep the history, time nothing"
    )
    args = parser.parse_args()
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
    # This process's own tasks (the ingestion's) go to memory://; the backfill is queued on
    # `broker` explicitly, for the workers.
    database = django_setup()
    model = history_ensure(args.days, args.per_day)
    if args.prepare:
        return
    seconds = {}
    for workers in (1, 2):
        seconds[workers] = backfill_timed(model, workers, database, broker, args.range_days)
        log(f"{workers} worker(s): {seconds[workers]:.1f} s")
    speedup = round(seconds[1] / seconds[2], 2)
    predictions = args.days * args.per_day
    result = {
        "days": args.days,
        "predictions": predictions,
        "range_days": args.range_days,
        "one_worker_s": round(seconds[1], 1),
        "two_workers_s": round(seconds[2], 1),
        "one_worker_predictions_per_s": round(predictions / seconds[1]),
        "two_workers_predictions_per_s": round(predictions / seconds[2]),
        "two_worker_speedup": speedup,
        "goal_two_worker_speedup": GOAL,
        "goal_met": speedup >= GOAL,
    }
    print(json.dumps(result))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
