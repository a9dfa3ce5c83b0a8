"""Ingestion's check for an id repeated across months, against the stored history.

    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/ids_check.py \
        [--stored 10000000] [--body 10000]

A body of new predictions is copied into its month, then its ids are checked against every
month of the model (`monitoring.ingest.store.ids_repeated`): a repeat is refused as a
`conflict`. This times that check for a body of `--body` new ids on a model with `--stored`
predictions over 30 days (written by one INSERT ... SELECT, not through the API). The check
reads every stored id of the model, so its time grows with the history: the run at two sizes
shows how much. The baseline, in the same process, is the same check on a model with no
history (the body's own ids only). The last line is one JSON object: `check_s` and
`baseline_s` (median of 3), and `growth` (their ratio).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import timedelta

from harness import DATASET_START, django_setup, model_delete, raw_partitions_ensure

NAME = "bench-ids-check"
DAYS = 30


def history_ensure(stored: int):
    """The model with `stored` predictions, written by SQL unless already there."""
    from datetime import datetime

    from django.db import connection

    from factory.models import MLModel
    from factory.services import model_create, version_register
    from monitoring.models import Prediction

    model = MLModel.objects.filter(name=NAME).first()
    if model is not None and Prediction.objects.filter(model=model).count() == stored:
        return model
    model_delete(NAME)
    model = model_create(name=NAME, task="binary_classification", positive_class=1)
    version = version_register(model=model, version="1", lineage={"code_version": "bench"}).version
    start = datetime.fromisoformat(DATASET_START)
    raw_partitions_ensure(start, start + timedelta(days=DAYS))
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO monitoring_prediction (model_id, version_id, prediction_id,
                timestamp, segment, prediction, content_md5)
            SELECT %s, %s, 'p-' || i, %s + (i * %s) * interval '1 second', '', '1',
                md5(i::text)
            FROM generate_series(0, %s - 1) AS i""",
            [model.pk, version.pk, start, DAYS * 86400 / stored, stored],
        )
        cursor.execute("ANALYZE monitoring_prediction")
    return model


def median_s(call, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stored", type=int, default=10_000_000)
    parser.add_argument("--body", type=int, default=10_000)
    args = parser.parse_args()
    django_setup()
    import pyarrow as pa
    from django.db import connection

    from factory.models import MLModel
    from factory.services import model_create
    from monitoring.ingest.store import ids_repeated

    model = history_ensure(args.stored)
    empty = MLModel.objects.filter(name=f"{NAME}-empty").first() or model_create(
        name=f"{NAME}-empty", task="binary_classification"
    )
    ids = pa.chunked_array([pa.array([f"new-{i}" for i in range(args.body)], pa.string())])
    with connection.cursor() as cursor:
        assert not ids_repeated(cursor, model.pk, ids)
        check_s = median_s(lambda: ids_repeated(cursor, model.pk, ids))
        baseline_s = median_s(lambda: ids_repeated(cursor, empty.pk, ids))
    result = {
        "stored": args.stored,
        "body": args.body,
        "check_s": round(check_s, 4),
        "baseline_s": round(baseline_s, 4),
        "growth": round(check_s / baseline_s, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
