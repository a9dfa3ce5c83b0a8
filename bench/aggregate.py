"""Throughput of the aggregation job (hourly counts, values and sketches), and its cardinality
sweep.

    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/aggregate.py \
        [--rows 1000000] [--days 2] [--shapes narrow,wide] [--paths sql]

Each shape's rows (two thirds labelled) are ingested through the app's CSV path and joined
once, and kept for later runs; then every hour is marked dirty, the bins are forgotten, and
`aggregates_refresh` rebuilds all of them (freezing the bins again), once per path (`sql`,
PostgreSQL's; `pandas`, the embedded SQLite fallback, which reads rows into Python an hour at
a time: slow on purpose, use fewer rows).
The shapes hold the same predictions:
- narrow: 10 features (9 numerical, 1 categorical), 1 segment, 1 version;
- wide: 100 features (90 numerical, 10 categorical), 20 segments, 3 versions.
Prints one JSON object on the last line: per shape and path `predictions_per_s` and
`feature_values_per_s` (predictions times features per second), and `cardinality_ratio`
(wide over narrow feature values per second; the goal is at least 0.5).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from harness import django_setup, frames_ingest, model_delete, outcomes_frame

START = "2026-01-05T00:00:00+00:00"
SHAPES = {  # features, segments, versions
    "narrow": (10, 1, 1),
    "wide": (100, 20, 3),
}
CHUNK = 100_000  # rows per ingested body
GOAL = 0.5


def frames(first: int, size: int, rows: int, days: int, shape: tuple[int, int, int]):
    import numpy as np
    import pandas as pd

    features, segments, versions = shape
    rng = np.random.default_rng(first)
    offsets = (np.arange(first, first + size) + rng.uniform(0, 1, size)) * (days * 86400 / rows)
    at = pd.Timestamp(START) + pd.to_timedelta(offsets, unit="s")
    score = rng.uniform(0, 1, size).round(4)
    ids = np.char.add("a-", np.arange(first, first + size).astype(str))
    columns = {
        "prediction_id": ids,
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "model_version": rng.choice([f"{v + 1}.0" for v in range(versions)], size),
        "prediction": (score >= 0.5).astype(int),
        "score": score,
        "segment": rng.choice([f"s{s}" for s in range(segments)], size),
    }
    categorical = features // 10
    for j in range(features - categorical):
        columns[f"x{j}"] = rng.normal(0, 1, size).round(4)
    for j in range(categorical):
        columns[f"c{j}"] = rng.choice(["red", "green", "blue", "amber"], size)
    return pd.DataFrame(columns), outcomes_frame(rng, ids, at, score, first)


def shape_ensure(name: str, rows: int, days: int):
    """The shape's model with its rows ingested and joined, built unless stored complete."""
    from factory.models import MLModel
    from factory.services import model_create
    from monitoring.pipeline.join import outcomes_join

    label = f"bench-aggregate-{name}-{rows}-{days}d"
    model = MLModel.objects.filter(name=label, description="complete").first()
    if model is not None:
        return model
    model_delete(label)
    model = model_create(name=label, task="binary_classification", positive_class=1)
    for first in range(0, rows, CHUNK):
        size = min(CHUNK, rows - first)
        frames_ingest(model, *frames(first, size, rows, days, SHAPES[name]))
        log(f"{name}: ingested {first + size:,} of {rows:,}")
    outcomes_join(model_id=model.pk)
    MLModel.objects.filter(pk=model.pk).update(description="complete")
    return model


def all_hours_mark_dirty(model_id: int) -> None:
    """Every hour dirty and the model's bins forgotten, so that every run aggregates the
    rows from nothing, freezing the bins included (a first run would otherwise be the only
    one to pay for it)."""
    from django.db import connection

    from monitoring.models import FeatureBins, SliceBins

    FeatureBins.objects.filter(model_id=model_id).delete()
    SliceBins.objects.filter(model_id=model_id).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO monitoring_dirtyhour (model_id, hour)
            SELECT DISTINCT model_id, date_trunc('hour', timestamp) FROM monitoring_prediction
            WHERE model_id = %s ON CONFLICT DO NOTHING""",
            [model_id],
        )
        cursor.execute("ANALYZE monitoring_prediction; ANALYZE monitoring_label")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--shapes", default="narrow,wide")
    parser.add_argument("--paths", default="sql")
    args = parser.parse_args()
    django_setup()
    from monitoring.pipeline.aggregate import aggregates_refresh

    result: dict = {"rows": args.rows, "days": args.days}
    for name in args.shapes.split(","):
        features, segments, versions = SHAPES[name]
        model = shape_ensure(name, args.rows, args.days)
        for path in args.paths.split(","):
            all_hours_mark_dirty(model.pk)
            started = time.perf_counter()
            hours = aggregates_refresh(model_id=model.pk, path=path)
            seconds = time.perf_counter() - started
            log(f"{name} {path}: {hours} hours in {seconds:.1f} s")
            key = f"{name}_{path}"
            result[f"{key}_s"] = round(seconds, 2)
            result[f"{key}_predictions_per_s"] = round(args.rows / seconds)
            result[f"{key}_feature_values_per_s"] = round(args.rows * features / seconds)
        result[f"{name}_shape"] = {
            "features": features,
            "segments": segments,
            "versions": versions,
        }
    for path in args.paths.split(","):
        narrow = result.get(f"narrow_{path}_feature_values_per_s")
        wide = result.get(f"wide_{path}_feature_values_per_s")
        if narrow and wide:
            ratio = round(wide / narrow, 2)
            result[f"cardinality_ratio{'' if path == 'sql' else '_' + path}"] = ratio
    if "cardinality_ratio" in result:
        result["goal_cardinality_ratio"] = GOAL
        result["goal_met"] = result["cardinality_ratio"] >= GOAL
    print(json.dumps(result))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
