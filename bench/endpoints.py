"""Latency of the reading endpoints on a model with many stored predictions.

    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/endpoints.py \
        [--rows 10000000] [--days 30] [--requests 20]

The model is the shared benchmark dataset (bench/harness.py `dataset_ensure`): predictions
ingested as CSV bodies through the ingestion service (the columnar COPY path), outcomes
joined and aggregates built by the app's own job. A stored complete dataset of the same size
is reused, so reruns (and bench/pages.py) do not rebuild it. Each endpoint is then called
through Django's test client: metrics (several names and granularities), drift, compare,
sensitivity and explain (a week against the week before, every dimension). The last line is
one JSON object with p50/p95 milliseconds per call and the worst p95; `goal_met` says whether
every p95 is under 300 ms. `explain_p95_ms` repeats the explain call's p95, and
`slice_bytes_per_day` the bytes explain's slice sums store per day of the dataset (the day's
sums and its 24 hours' entries, compressed documents).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timedelta

from harness import DATASET_START, dataset_ensure, django_setup

GOAL_MS = 300


def calls(name: str, days: int) -> dict[str, tuple[str, dict]]:
    start = datetime.fromisoformat(DATASET_START)
    base = f"/api/v1/models/{name}"
    month = {"start": start.isoformat(), "end": (start + timedelta(days=days)).isoformat()}
    week = {"start": (start + timedelta(days=days - 7)).isoformat(), "end": month["end"]}
    pair = {"baseline": "1.0", "candidate": "2.0"}
    last = start + timedelta(days=days)
    explain_weeks = {
        "start": (last - timedelta(days=7)).isoformat(),
        "end": last.isoformat(),
        "baseline_start": (last - timedelta(days=14)).isoformat(),
        "baseline_end": (last - timedelta(days=7)).isoformat(),
    }

    def metric(metric: str, granularity: str = "day", window=month, **more) -> tuple:
        return f"{base}/metrics", {"metric": metric, "granularity": granularity, **window, **more}

    return {
        "metrics_accuracy_day": metric("accuracy"),
        "metrics_accuracy_hour_week": metric("accuracy", "hour", week),
        "metrics_accuracy_week": metric("accuracy", "week"),
        "metrics_roc_auc_day": metric("roc_auc"),
        "metrics_f1_day_segment": metric("f1", segment="web"),
        "metrics_log_loss_day_version": metric("log_loss", version="2.0"),
        "metrics_brier_week": metric("brier", "week"),
        "metrics_label_delay_p50_day": metric("label_delay_p50"),
        "metrics_drift_f0_day": metric("drift:f0"),
        "metrics_drift_plan_week": metric("drift:plan", "week"),
        "metrics_missing_rate_f1_hour_week": metric("missing_rate:f1", "hour", week),
        "metrics_predictions_hour_month": metric("predictions", "hour"),
        "drift_month": (f"{base}/drift", {**month}),
        "drift_week_segment": (f"{base}/drift", {**week, "segment": "app"}),
        "compare_accuracy": (f"{base}/compare", {"metric": "accuracy", **pair, **month}),
        "compare_roc_auc": (f"{base}/compare", {"metric": "roc_auc", **pair, **month}),
        "sensitivity_accuracy_day": (
            f"{base}/sensitivity",
            {"metric": "accuracy", "granularity": "day"},
        ),
        "sensitivity_log_loss_week": (
            f"{base}/sensitivity",
            {"metric": "log_loss", "granularity": "week"},
        ),
        "explain_accuracy_week": (f"{base}/explain", {"metric": "accuracy", **explain_weeks}),
    }


def latencies(name: str, days: int, requests: int) -> dict:
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    client = APIClient()
    key = api_key_create(name="bench-endpoints", scopes=["read"])
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    out = {}
    for call, (url, params) in calls(name, days).items():
        response = client.get(url, params)  # warm
        assert response.status_code == 200, (call, response.status_code, response.content[:300])
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            client.get(url, params)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        out[call] = {
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
        }
        log(f"{call}: {out[call]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    django_setup()
    from django.db import connection

    from monitoring.models import Prediction, SliceDay, SliceHour

    model, build = dataset_ensure(args.rows, args.days, log=log)
    stored = Prediction.objects.filter(model=model).count()
    figures = latencies(model.name, args.days, args.requests)
    worst = max(f["p95_ms"] for f in figures.values())
    slice_bytes = sum(
        len(document)
        for rows, field in ((SliceDay, "sums"), (SliceHour, "entries"))
        for document in rows.objects.filter(model=model).values_list(field, flat=True)
    )
    print(
        json.dumps(
            {
                "rows": stored,
                "days": args.days,
                "database": connection.vendor,
                "build": build,
                "requests": args.requests,
                "endpoints": figures,
                "worst_p95_ms": worst,
                "explain_p95_ms": figures["explain_accuracy_week"]["p95_ms"],
                "slice_bytes_per_day": round(slice_bytes / args.days),
                "goal_ms": GOAL_MS,
                "goal_met": worst < GOAL_MS,
            }
        )
    )


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
