"""The join job against the single hand-written SQL statement that joins the same rows.

    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/join.py [--rows 1000000]

Outcomes: 80% match a prediction, shuffled, 5% are later corrections of another outcome of the
same prediction (the newest must win). Prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta

from harness import django_setup, model_and_key, raw_partitions_ensure, tables_truncate

START = datetime(2026, 3, 1, tzinfo=UTC)
TABLES = (
    "monitoring_label",
    "monitoring_outcome",
    "monitoring_prediction",
    "monitoring_dirtyhour",
    "monitoring_joinstate",
)


def rows_insert(model_id: int, version_id: int, outcomes: int) -> None:
    """Predictions for the matching 80%, then the outcomes in a random order, in SQL."""
    from django.db import connection

    corrections = outcomes // 20
    firsts = outcomes - corrections
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO monitoring_prediction (model_id, version_id, prediction_id, timestamp,
                segment, prediction, prediction_num, score, content_md5)
            SELECT %s, %s, 'p-' || i, %s + make_interval(secs => i), '', (i %% 2)::text,
                i %% 2, random(), ''
            FROM generate_series(1, %s) AS i WHERE i %% 5 <> 0
            """,
            [model_id, version_id, START, firsts],
        )
        cursor.execute(
            """
            INSERT INTO monitoring_outcome (model_id, prediction_id, observed_at, outcome,
                outcome_num, content_md5)
            SELECT %s, 'p-' || i, %s + make_interval(days => 1 + v, secs => i),
                ((i + v) %% 2)::text, (i + v) %% 2, ''
            FROM (
                SELECT i, 0 AS v FROM generate_series(1, %s) AS i
                UNION ALL
                SELECT (i::bigint * 7919) %% %s + 1, 1 FROM generate_series(1, %s) AS i
            ) o ORDER BY random()
            """,
            [model_id, START, firsts, firsts, corrections],
        )
        cursor.execute("ANALYZE monitoring_prediction")
        cursor.execute("ANALYZE monitoring_outcome")


HAND_WRITTEN_JOIN = """
    INSERT INTO monitoring_label (prediction_id, model_id, outcome_ref_id, outcome, outcome_num,
        "values", observed_at, delay_s, correct, hour)
    SELECT p.id, p.model_id, o.id, o.outcome, o.outcome_num, o."values", o.observed_at,
        EXTRACT(EPOCH FROM (o.observed_at - p.timestamp)), p.prediction = o.outcome,
        date_trunc('hour', p.timestamp)
    FROM (
        SELECT DISTINCT ON (prediction_id) * FROM monitoring_outcome WHERE model_id = %s
        ORDER BY prediction_id, observed_at DESC, id DESC
    ) o
    JOIN monitoring_prediction p ON p.model_id = o.model_id AND p.prediction_id = o.prediction_id
"""


def timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="outcomes")
    args = parser.parse_args()
    django_setup()
    from django.db import connection, transaction

    from factory.models import MLModel
    from factory.services import versions_resolve
    from monitoring.models import Label
    from monitoring.pipeline.join import outcomes_join

    model_id, _ = model_and_key()
    version_id = versions_resolve(model=MLModel.objects.get(pk=model_id), names={"1.0.0"})["1.0.0"]
    tables_truncate(*TABLES)
    raw_partitions_ensure(START, START + timedelta(seconds=args.rows))
    rows_insert(model_id, version_id, args.rows)
    log(f"{args.rows:,} outcomes stored")

    def sql_join():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(HAND_WRITTEN_JOIN, [model_id])

    sql_s = timed(sql_join)
    sql_labels = Label.objects.count()
    tables_truncate("monitoring_label", "monitoring_dirtyhour", "monitoring_joinstate")
    job_s = timed(lambda: outcomes_join(model_id=model_id))
    job_labels = Label.objects.count()
    assert job_labels == sql_labels, (job_labels, sql_labels)
    result = {
        "rows": args.rows,
        "labels": job_labels,
        "job_rows_per_s": round(args.rows / job_s),
        "sql_rows_per_s": round(args.rows / sql_s),
        "job_to_sql_ratio": round(sql_s / job_s, 3),
    }
    tables_truncate(*TABLES)
    print(json.dumps(result))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
