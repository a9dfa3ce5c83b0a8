"""Page benchmark: p95 of the model page and of its chart data, with N stored predictions.

The model is the shared benchmark dataset (bench/harness.py `dataset_ensure`: predictions
through the ingestion service's COPY path, two of three labelled, joined and aggregated by the
app's own job), built once and reused by later runs and by bench/endpoints.py. The pages show
the whole stored span (`days=all`), so every stored prediction is behind them. The baseline, run
in the same process, is the model page of a model without data: the page's fixed cost.

    DATABASE_URL=postgres://... .venv/bin/python bench/pages.py --rows 10000000

`model_page_p95_ms` is with the page's cached sections warm (they are kept 5 minutes, keyed by
the data in scope); `model_page_uncached_p95_ms` empties the whole cache before each request (a
cold start); `model_page_after_new_data_p95_ms` ingests and aggregates one new prediction
(untimed) before each request, so the page's sections are recomputed as under continuous
ingestion; `drift_section_uncached_p95_ms` is the page's drift section alone (every window of
every feature tested) with an empty cache; `feature_page_p95_ms` is the page of the drifting
feature `f0` (its distribution, drift over time and per segment). `goal_met` needs the warm
page, the page after new data and the chart data under GOAL_MS, and the page with an empty
cache under COLD_GOAL_MS.  `hour_view_p95_ms` is the model page in hourly windows over
the whole stored span (30 days: 720 windows per chart, the drift heatmap's too), warm as
`model_page_p95_ms`; `hour_view_after_new_data_p95_ms` recomputes it after each new
prediction; its goal is under HOUR_VIEW_GOAL_MS at the demo's size (`--rows 17000`). The last
line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timedelta
from urllib.parse import urlencode

from harness import DATASET_START, dataset_ensure, django_setup

GOAL_MS = 300
COLD_GOAL_MS = 1000  # the first visit after a restart or a deploy
HOUR_VIEW_GOAL_MS = 1000


def p95_ms(client, url: str, repeat: int, before=lambda: None) -> tuple[float, float]:
    """p95 and median in ms of `repeat` reads; `before` runs untimed ahead of each one."""
    client.get(url)  # warm connections

    def read() -> None:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)

    return p95_call_ms(read, repeat, before)


def p95_call_ms(call, repeat: int, before=lambda: None) -> tuple[float, float]:
    """p95 and median in ms of `repeat` calls; `before` runs untimed ahead of each one."""
    times = []
    for _ in range(repeat):
        before()
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return times[int(0.95 * (len(times) - 1))], statistics.median(times)


def new_prediction_aggregated(model, at: datetime) -> None:
    """One more prediction at `at`, ingested and aggregated: the page's cache keys move, as
    they do under continuous ingestion."""
    from monitoring.ingest.services import records_ingest
    from monitoring.jobs import jobs_run

    record = {
        "prediction_id": f"bench-new-{time.time_ns()}",
        "timestamp": at.isoformat(),
        "model_version": "2.0",
        "prediction": 1,
        "score": 0.7,
        "segment": "web",
        "features": {"f0": 0.3, "plan": "basic"},
    }
    records_ingest(model=model, kind="predictions", records=[record], enqueue_jobs=False)
    jobs_run(model_id=model.pk)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    django_setup()
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.test import Client

    from dashboard.sections.base import Scope
    from dashboard.sections.drift import drift_section
    from factory.models import MLModel
    from factory.services import model_create

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    model, build = dataset_ensure(args.rows, args.days, log=log)
    if not MLModel.objects.filter(name="bench-empty").exists():
        model_create(name="bench-empty", task="binary_classification", positive_class=1)
    users = get_user_model().objects
    user = users.filter(username="bench").first() or users.create_superuser("bench", "", "x")
    client = Client()
    client.force_login(user)
    page = f"/models/{model.name}/?days=all"
    page_p95, page_median = p95_ms(client, page, args.repeat)
    cold_p95, cold_median = p95_ms(client, page, args.repeat, before=cache.clear)
    drift_p95, _ = p95_call_ms(
        lambda: drift_section(model=model, scope=Scope(days=None)), args.repeat, cache.clear
    )
    start = datetime.fromisoformat(DATASET_START)
    last_hour = start + timedelta(days=args.days) - timedelta(minutes=30)
    fresh_p95, fresh_median = p95_ms(
        client, page, args.repeat, before=lambda: new_prediction_aggregated(model, last_hour)
    )
    span = {"start": start.isoformat(), "end": (start + timedelta(days=args.days)).isoformat()}
    chart = f"/api/v1/models/{model.name}/metrics?" + urlencode(
        {"metric": "accuracy", "granularity": "day", **span}
    )
    chart_p95, chart_median = p95_ms(client, chart, args.repeat)
    feature = f"/models/{model.name}/features/f0/?days=all"
    feature_p95, feature_median = p95_ms(client, feature, args.repeat)
    hour_view = f"/models/{model.name}/?granularity=hour&days=all"
    hour_p95, hour_median = p95_ms(client, hour_view, args.repeat)
    hour_fresh_p95, hour_fresh_median = p95_ms(
        client, hour_view, args.repeat, before=lambda: new_prediction_aggregated(model, last_hour)
    )
    empty_p95, _ = p95_ms(client, "/models/bench-empty/", args.repeat)
    result = {
        "rows": args.rows,
        "build": build,
        "model_page_p95_ms": round(page_p95, 1),
        "model_page_median_ms": round(page_median, 1),
        "model_page_uncached_p95_ms": round(cold_p95, 1),
        "model_page_uncached_median_ms": round(cold_median, 1),
        "drift_section_uncached_p95_ms": round(drift_p95, 1),
        "model_page_after_new_data_p95_ms": round(fresh_p95, 1),
        "model_page_after_new_data_median_ms": round(fresh_median, 1),
        "chart_data_p95_ms": round(chart_p95, 1),
        "chart_data_median_ms": round(chart_median, 1),
        "feature_page_p95_ms": round(feature_p95, 1),
        "feature_page_median_ms": round(feature_median, 1),
        "hour_view_p95_ms": round(hour_p95, 1),
        "hour_view_median_ms": round(hour_median, 1),
        "hour_view_after_new_data_p95_ms": round(hour_fresh_p95, 1),
        "hour_view_after_new_data_median_ms": round(hour_fresh_median, 1),
        "baseline_empty_model_page_p95_ms": round(empty_p95, 1),
        "goal_met": max(page_p95, fresh_p95, chart_p95) < GOAL_MS and cold_p95 < COLD_GOAL_MS,
        "hour_view_goal_met": hour_p95 < HOUR_VIEW_GOAL_MS,
        "repeat": args.repeat,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
