"""Page benchmark: p95 of the model page and of its chart data, with N stored predictions.

Predictions go through the ingestion path (`records_ingest`: validation, staging, COPY on
PostgreSQL), a third of them get outcomes, then the jobs aggregate them. The baseline, run in
the same process, is the model page of a model without data: the page's fixed cost.

    DATABASE_URL=postgres://... python bench/pages.py --rows 10000000

`model_page_p95_ms` is with the label-delay distribution cached (it is, for 5 minutes);
`model_page_uncached_p95_ms` empties the cache before each request; `feature_page_p95_ms` is
the page of feature `x` (its distribution, drift over time and per segment). The last line printed
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from factory.models import MLModel  # noqa: E402
from factory.services import model_create  # noqa: E402
from monitoring.ingest.services import records_ingest  # noqa: E402
from monitoring.jobs import jobs_run  # noqa: E402

BATCH = 50_000  # records per ingestion call, under CANARY_MAX_RECORDS
DAYS = 90
SEGMENTS = ("web", "mobile", "partner", "store")


def batches(n: int, now: datetime, seed: int = 1):
    """Prediction and outcome records, BATCH at a time, spread over DAYS days."""
    rng = np.random.default_rng(seed)
    start = now - timedelta(days=DAYS)
    for first in range(0, n, BATCH):
        size = min(BATCH, n - first)
        offsets = np.sort(rng.uniform(0, DAYS * 86400, size))
        scores = rng.uniform(0, 1, size).round(4)
        delays = rng.uniform(3600, 14 * 86400, size)
        predictions, outcomes = [], []
        for i in range(size):
            at = start + timedelta(seconds=float(offsets[i]))
            pid = f"b-{first + i}"
            predictions.append({
                "prediction_id": pid, "timestamp": at.isoformat(),
                "model_version": "2.0" if offsets[i] > DAYS * 86400 / 2 else "1.0",
                "prediction": int(scores[i] >= 0.5), "score": float(scores[i]),
                "segment": SEGMENTS[i % 4], "features": {"x": float(scores[i]), "plan": "a"},
            })  # fmt: skip
            observed = at + timedelta(seconds=float(delays[i]))
            if i % 3 == 0 and observed < now:
                outcomes.append({
                    "prediction_id": pid, "observed_at": observed.isoformat(),
                    "outcome": int(rng.random() < scores[i]), "values": {"revenue": 10.0},
                })  # fmt: skip
        yield predictions, outcomes


def populate(model: MLModel, n: int) -> float:
    began = time.perf_counter()
    now = datetime.now(UTC)
    for predictions, outcomes in batches(n, now):
        records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
        records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
        jobs_run(model_id=model.pk)
    return time.perf_counter() - began


def p95_ms(client: Client, url: str, repeat: int, cold: bool = False) -> tuple[float, float]:
    """p95 and median in ms; `cold` empties Django's cache before every request."""
    client.get(url)  # warm connections
    times = []
    for _ in range(repeat):
        if cold:
            cache.clear()
        began = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    times.sort()
    return times[int(0.95 * (len(times) - 1))], statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's models")
    parser.add_argument("--reuse", action="store_true", help="reuse models kept by --keep")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    name = f"bench-pages-{args.rows}"
    load_s = 0.0
    if not (args.reuse and MLModel.objects.filter(name=name).exists()):
        MLModel.objects.filter(name__in=[name, "bench-empty"]).delete()
        model = model_create(name=name, task="binary_classification", positive_class=1)
        model_create(name="bench-empty", task="binary_classification", positive_class=1)
        load_s = populate(model, args.rows)
    users = get_user_model().objects
    user = users.filter(username="bench").first() or users.create_superuser("bench", "", "x")
    client = Client()
    client.force_login(user)
    page_p95, page_median = p95_ms(client, f"/models/{name}/", args.repeat)
    cold_p95, cold_median = p95_ms(client, f"/models/{name}/", args.repeat, cold=True)
    chart_url = f"/api/v1/models/{name}/metrics?metric=accuracy&granularity=day"
    chart_p95, chart_median = p95_ms(client, chart_url, args.repeat)
    feature_p95, feature_median = p95_ms(client, f"/models/{name}/features/x/", args.repeat)
    empty_p95, _ = p95_ms(client, "/models/bench-empty/", args.repeat)
    if not args.keep:
        MLModel.objects.filter(name__in=[name, "bench-empty"]).delete()
    result = {
        "rows": args.rows,
        "database": django.db.connection.vendor,
        "load_s": round(load_s, 1),
        "model_page_p95_ms": round(page_p95, 1),
        "model_page_median_ms": round(page_median, 1),
        "model_page_uncached_p95_ms": round(cold_p95, 1),
        "model_page_uncached_median_ms": round(cold_median, 1),
        "chart_data_p95_ms": round(chart_p95, 1),
        "chart_data_median_ms": round(chart_median, 1),
        "feature_page_p95_ms": round(feature_p95, 1),
        "feature_page_median_ms": round(feature_median, 1),
        "baseline_empty_model_page_p95_ms": round(empty_p95, 1),
        "repeat": args.repeat,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
