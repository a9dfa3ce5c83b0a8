"""The whole job (`run_jobs`: join, aggregation, alert evaluation) on a realistic shape.

    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/pipeline.py \
        [--rows 105000] [--days 42] [--runs 3]

The shape of a claims model: 105,000 predictions over 42 days, 7 features (5 numerical, 2
categorical), 5 segments and 3 versions (1.0 serving, a 1.1 canary over the last 14 days and a
2.0 trial throughout), four in five predictions labelled within 10 days. Each run builds the
model anew through the ingestion service (not timed), then times `jobs_run` from nothing: every
hour is dirty, every label new. Prints one JSON object on the last line, with
`pipeline_predictions_per_s` (the median run) and the goal (30,000 a second).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from harness import django_setup, frames_ingest, model_delete

NAME = "bench-pipeline"
START = "2026-01-05T00:00:00+00:00"
SEGMENTS = ("north", "south", "east", "west", "central")
GOAL = 30_000


def frames(rows: int, days: int, seed: int = 7):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.uniform(0, days * 86400, rows))
    at = pd.Timestamp(START) + pd.to_timedelta(offsets, unit="s")
    share = offsets / (days * 86400)
    draw = rng.uniform(size=rows)
    version = np.where(draw < 0.05, "2.0", np.where((share > 2 / 3) & (draw < 0.15), "1.1", "1.0"))
    score = rng.beta(2, 5, rows).round(4)
    ids = np.char.add("c-", np.arange(rows).astype(str))
    predictions = pd.DataFrame(
        {
            "prediction_id": ids,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "model_version": version,
            "prediction": (score >= 0.5).astype(int),
            "score": score,
            "segment": rng.choice(SEGMENTS, rows),
            "claim_amount": rng.lognormal(7, 1, rows).round(2),
            "policy_age_days": rng.integers(0, 3650, rows),
            "customer_age": rng.normal(45, 12, rows).round(0),
            "prior_claims": rng.poisson(0.4, rows),
            "vehicle_value": rng.lognormal(10, 0.5, rows).round(0),
            "channel": rng.choice(["agent", "web", "phone"], rows),
            "product": rng.choice(["basic", "plus", "premium", "fleet"], rows),
        }
    )
    labelled = rng.uniform(size=rows) < 0.8
    delay = pd.to_timedelta(rng.uniform(3600, 10 * 86400, rows), unit="s")
    outcomes = pd.DataFrame(
        {
            "prediction_id": ids,
            "observed_at": (at + delay).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "outcome": (rng.uniform(size=rows) < score).astype(int),
        }
    )[labelled]
    return predictions, outcomes


def model_build(rows: int, days: int):
    """A fresh model with the rows ingested (CSV predictions, JSON outcomes) and no job run."""
    from factory.services import model_create

    model_delete(NAME)
    model = model_create(name=NAME, task="binary_classification", positive_class=1)
    frames_ingest(model, *frames(rows, days))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=105_000)
    parser.add_argument("--days", type=int, default=42)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    django_setup()
    from django.db import connection

    from monitoring.jobs import jobs_run

    seconds = []
    for run in range(args.runs):
        model = model_build(args.rows, args.days)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE monitoring_prediction; ANALYZE monitoring_outcome")
        started = time.perf_counter()
        report = jobs_run(model_id=model.pk)
        seconds.append(time.perf_counter() - started)
        assert not report.failed, report.failures
        log(f"run {run + 1}: {report.hours_refreshed} hours in {seconds[-1]:.2f} s")
    median = statistics.median(seconds)
    rate = round(args.rows / median)
    result = {
        "rows": args.rows,
        "days": args.days,
        "features": 7,
        "segments": len(SEGMENTS),
        "versions": 3,
        "runs_s": [round(s, 2) for s in seconds],
        "pipeline_predictions_per_s": rate,
        "goal_predictions_per_s": GOAL,
        "goal_met": rate >= GOAL,
    }
    print(json.dumps(result))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
