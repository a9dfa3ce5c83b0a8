"""Ingestion's check for an id stored in another month, against the stored history.

    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/ids_check.py \
        [--stored 10000000] [--body 10000]

A body of new predictions is copied into its month, then its keys into `PredictionKey`,
whose unique index spans the months: a key stored before fails that COPY and the body is
stored the careful way, a repeat refused as a `conflict` (`monitoring.ingest.store`). This
times that COPY for a body of `--body` new ids on a model with `--stored` predictions over 30
days (written by SQL, keys included, not through the API), rolled back after each run. The
baseline, in the same process, is the same COPY for a model with no history. The last line is
one JSON object: `check_s` and `baseline_s` (median of 3), and `growth` (their ratio).
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
    """The model with `stored` predictions and their keys, written by SQL unless there."""
    from datetime import datetime

    from django.db import connection

    from factory.models import MLModel
    from factory.services import model_create, version_register
    from monitoring.models import Prediction, PredictionKey

    model = MLModel.objects.filter(name=NAME).first()
    if (
        model is not None
        and Prediction.objects.filter(model=model).count() == stored
        and PredictionKey.objects.filter(model_id=model.pk).count() == stored
    ):
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
        cursor.execute(
            """INSERT INTO monitoring_predictionkey (model_id, prediction_id, "timestamp")
            SELECT model_id, prediction_id, "timestamp" FROM monitoring_prediction
            WHERE model_id = %s""",
            [model.pk],
        )
        cursor.execute("ANALYZE monitoring_prediction")
        cursor.execute("ANALYZE monitoring_predictionkey")
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
    from django.db import connection, transaction

    from factory.models import MLModel
    from factory.services import model_create
    from monitoring.ingest.records import PredictionRow
    from monitoring.ingest.store import keys_copy

    model = history_ensure(args.stored)
    empty = MLModel.objects.filter(name=f"{NAME}-empty").first() or model_create(
        name=f"{NAME}-empty", task="binary_classification"
    )
    rows = [
        PredictionRow(f"new-{number}", model.created_at, "1", "1", None, None, "", None, "")
        for number in range(args.body)
    ]

    def keys_copied(model_id: int) -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            keys_copy(cursor, model_id, rows, None)
            transaction.set_rollback(True)

    check_s = median_s(lambda: keys_copied(model.pk))
    baseline_s = median_s(lambda: keys_copied(empty.pk))
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
