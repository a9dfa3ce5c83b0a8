"""Latency of the statistics endpoints on a model with many stored predictions.

    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/endpoints.py \
        [--predictions 10000000] [--days 30] [--requests 20]

Raw predictions and outcomes go in with COPY; the join and the aggregation are the app's own
(`outcomes_join`, `aggregates_refresh`), so the aggregates are what production would store.
Then each endpoint is called through Django's test client; the last line is one JSON object
with p50/p95 milliseconds per endpoint.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
START = datetime(2026, 1, 5, tzinfo=UTC)
NAME = "bench-endpoints"
COPY_ROWS = 100_000  # rows generated and copied per chunk: about 60 MB of Python objects


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def copy_rows(model, versions, n: int, days: int, seed: int) -> None:
    from django.db import connection

    rng = np.random.default_rng(seed)
    seconds = days * 86400
    with connection.cursor() as cursor:
        for first in range(0, n, COPY_ROWS):
            size = min(COPY_ROWS, n - first)
            at = np.sort(rng.integers(0, seconds, size))
            score = rng.uniform(0, 1, size).round(4)
            drift = at / seconds  # features drift slowly over the month
            ages = rng.normal(40 + 5 * drift, 10).round(1)
            plans = rng.choice(["basic", "pro", "team"], size)
            version = rng.uniform(size=size) < 0.2
            outcome = rng.uniform(size=size) < score
            with cursor.cursor.copy(
                "COPY monitoring_prediction (model_id, version_id, prediction_id, timestamp, "
                "segment, prediction, prediction_num, score, features, content_md5) FROM STDIN"
            ) as copy:
                for i in range(size):
                    prediction = int(score[i] >= 0.5)
                    copy.write_row((
                        model.pk, versions[int(version[i])], f"p{first + i}",
                        START + timedelta(seconds=int(at[i])), "", str(prediction),
                        float(prediction), float(score[i]),
                        json.dumps({"age": float(ages[i]), "plan": str(plans[i])}), "x",
                    ))  # fmt: skip
            with cursor.cursor.copy(
                "COPY monitoring_outcome (model_id, prediction_id, observed_at, outcome, "
                "outcome_num, content_md5) FROM STDIN"
            ) as copy:
                for i in range(size):
                    when = START + timedelta(seconds=int(at[i]) + 3600)
                    copy.write_row((model.pk, f"p{first + i}", when, str(int(outcome[i])),
                                    float(outcome[i]), "x"))  # fmt: skip


def build(n: int, days: int) -> None:
    from django.db import connection

    from factory.models import MLModel, ModelVersion
    from factory.services import model_create
    from monitoring.aggregate import aggregates_refresh
    from monitoring.join import outcomes_join

    MLModel.objects.filter(name=NAME).delete()
    model = model_create(name=NAME, task="binary_classification", positive_class=1)
    versions = [ModelVersion.objects.create(model=model, version=v).pk for v in ("1.0", "2.0")]
    copy_rows(model, versions, n, days, seed=1)
    outcomes_join(model_id=model.pk, sweep=True)
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO monitoring_dirtyhour (model_id, hour)
            SELECT DISTINCT model_id, date_trunc('hour', timestamp) FROM monitoring_prediction
            WHERE model_id = %s ON CONFLICT DO NOTHING""",
            [model.pk],
        )
    aggregates_refresh(model_id=model.pk)


def latencies(requests: int, days: int) -> dict:
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='bench', scopes=['read'])}")
    end = (START + timedelta(days=days)).isoformat()
    base = f"/api/v1/models/{NAME}"
    month = {"start": START.isoformat(), "end": end}
    pair = {"baseline": "1.0", "candidate": "2.0"}
    calls = {
        "metrics_accuracy_day": (f"{base}/metrics", {"metric": "accuracy", **month}),
        "metrics_roc_auc_day": (f"{base}/metrics", {"metric": "roc_auc", **month}),
        "metrics_drift_age_day": (f"{base}/metrics", {"metric": "drift:age", **month}),
        "metrics_missing_rate_hour": (
            f"{base}/metrics", {"metric": "missing_rate:age", "granularity": "hour", **month}
        ),
        "drift_month": (f"{base}/drift", {**month, "version": "1.0"}),
        "compare_accuracy": (f"{base}/compare", {"metric": "accuracy", **pair, **month}),
        "compare_roc_auc": (f"{base}/compare", {"metric": "roc_auc", **pair, **month}),
        "sensitivity_accuracy": (f"{base}/sensitivity", {"metric": "accuracy", **month}),
    }  # fmt: skip
    out = {}
    for name, (url, params) in calls.items():
        assert client.get(url, params).status_code == 200, name  # warm
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        out[name] = {"p50_ms": statistics.median(times),
                     "p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))]}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--predictions", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="reuse the stored model")
    args = parser.parse_args()
    setup()
    from factory.models import MLModel

    started = time.perf_counter()
    if not (args.keep and MLModel.objects.filter(name=NAME).exists()):
        build(args.predictions, args.days)
    build_s = time.perf_counter() - started
    figures = latencies(args.requests, args.days)
    print(json.dumps({"predictions": args.predictions, "days": args.days, "build_s": build_s,
                      "endpoints": figures,
                      "worst_p95_ms": max(f["p95_ms"] for f in figures.values())}))  # fmt: skip


if __name__ == "__main__":
    main()
