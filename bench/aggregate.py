"""Throughput of the aggregation job (hourly counts, values and sketches) in predictions/s.

    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/aggregate.py \
        [--rows 200000] [--days 2] [--paths sql,pandas]

The rows (10 features, two thirds labelled) are ingested and joined once, and kept for later
runs; then every hour is marked dirty and `aggregates_refresh` rebuilds all of them, once per
path: `sql` (set-based, PostgreSQL) and `pandas` (the embedded SQLite fallback), in the same
process (`default` runs the job as it chooses). Prints one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from harness import dataset_ensure, django_setup


def all_hours_mark_dirty(model_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO monitoring_dirtyhour (model_id, hour)
            SELECT DISTINCT model_id, date_trunc('hour', timestamp) FROM monitoring_prediction
            WHERE model_id = %s ON CONFLICT DO NOTHING""",
            [model_id],
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--paths", default="sql,pandas")
    args = parser.parse_args()
    django_setup()
    from monitoring.pipeline.aggregate import aggregates_refresh
    from monitoring.pipeline.join import outcomes_join

    model, _ = dataset_ensure(args.rows, args.days, jobs=False, log=log)
    outcomes_join(model_id=model.pk)
    result = {"rows": args.rows, "features": 10}
    for path in args.paths.split(","):
        all_hours_mark_dirty(model.pk)
        started = time.perf_counter()
        # "default": the job's own choice (how an older checkout without paths is measured)
        choice = {} if path == "default" else {"path": path}
        hours = aggregates_refresh(model_id=model.pk, **choice)
        seconds = time.perf_counter() - started
        log(f"{path}: {hours} hours in {seconds:.1f} s")
        result[f"{path}_s"] = round(seconds, 2)
        result[f"{path}_predictions_per_s"] = round(args.rows / seconds)
    if "sql_s" in result and "pandas_s" in result:
        result["speedup"] = round(result["pandas_s"] / result["sql_s"], 1)
    print(json.dumps(result))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
