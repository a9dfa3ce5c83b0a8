"""Bulk storage of validated rows: staging table, then one INSERT ... ON CONFLICT DO NOTHING.

Predictions whose ids are all new go straight into their table with COPY instead. Otherwise
the database decides what is new; rows it skipped are duplicates (same content hash) or
conflicts (other content under the same key). PostgreSQL fills the staging table with COPY,
SQLite with executemany; the rest is the same SQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
from django.db import connection, transaction
from psycopg.errors import UniqueViolation

from common.sql import hour_of, is_postgres
from monitoring.ingest.columnar import ColumnarChunk
from monitoring.ingest.records import OutcomeRow, PredictionRow

STAGE_BATCH_ROWS = 5_000  # rows per executemany on SQLite


@dataclass
class StoreResult:
    accepted: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)


def json_text(value) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def stage(cursor, table: str, columns: dict[str, str], rows: Sequence[tuple]) -> None:
    """Create a temporary staging table and fill it."""
    names = ", ".join(columns)
    unstage(cursor, table)  # left over when a caller's outer transaction is still open
    if is_postgres():
        typed = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        cursor.execute(f"CREATE TEMP TABLE {table} ({typed}) ON COMMIT DROP")
        with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    cursor.execute(f"CREATE TEMP TABLE {table} ({names})")
    placeholders = ", ".join(["%s"] * len(columns))
    adapt = connection.ops.adapt_datetimefield_value
    for start in range(0, len(rows), STAGE_BATCH_ROWS):
        chunk = [
            tuple(adapt(v) if hasattr(v, "tzinfo") else v for v in row)
            for row in rows[start : start + STAGE_BATCH_ROWS]
        ]
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({placeholders})", chunk)


def unstage(cursor, table: str) -> None:
    schema = "pg_temp" if is_postgres() else "temp"
    cursor.execute(f"DROP TABLE IF EXISTS {schema}.{table}")


def classify(
    keys: list[tuple], inserted: set[tuple], stored_md5: dict[tuple, str], md5s: list[str]
) -> StoreResult:
    """Sort staged rows into accepted, duplicates and conflicts; the first of a key wins."""
    result = StoreResult()
    for index, (key, md5) in enumerate(zip(keys, md5s, strict=True)):
        if key in inserted:
            inserted.discard(key)
            result.accepted.append(index)
        elif stored_md5.get(key) == md5:
            result.duplicates.append(index)
        else:
            result.conflicts.append(index)
    return result


PREDICTION_STAGE = {
    "idx": "integer",
    "prediction_id": "text",
    "ts": "timestamptz",
    "version_id": "bigint",
    "prediction": "text",
    "prediction_num": "float8",
    "score": "float8",
    "segment": "text",
    "features": "jsonb",
    "content_md5": "text",
}


def predictions_store(
    *,
    model_id: int,
    batch_id: int,
    rows: list[PredictionRow],
    version_ids: dict[str, int],
    columnar: ColumnarChunk | None = None,
) -> StoreResult:
    """Insert prediction rows (then the columnar ones, numbered after them) in the caller's
    transaction; mark the hours of what was staged dirty."""
    features = "features::jsonb" if is_postgres() else "features"
    ids = pa.chunked_array(
        [pa.array([row.prediction_id for row in rows], pa.string())]
        + (columnar.good["prediction_id"].chunks if columnar is not None else []),
        pa.string(),
    )
    with connection.cursor() as cursor:
        if pc.count_distinct(ids).as_py() == len(ids) and predictions_copy_direct(
            cursor,
            model_id=model_id,
            batch_id=batch_id,
            rows=rows,
            version_ids=version_ids,
            columnar=columnar,
        ):
            return StoreResult(accepted=list(range(len(ids))))
        keys = [(pid,) for pid in ids.to_pylist()]
        md5s = [row.content_md5 for row in rows]
        if columnar is not None:
            md5s += columnar.good["content_md5"].to_pylist()
        staged = [
            (
                index,
                row.prediction_id,
                row.timestamp,
                version_ids[row.model_version],
                row.prediction,
                row.prediction_num,
                row.score,
                row.segment,
                row.features_json,
                row.content_md5,
            )
            for index, row in enumerate(rows)
        ]
        stage(cursor, "stage_predictions", PREDICTION_STAGE, staged)
        if columnar is not None and columnar.good.num_rows:
            names = ", ".join(PREDICTION_STAGE)
            sql = f"COPY stage_predictions ({names}) FROM STDIN (FORMAT csv)"
            with cursor.cursor.copy(sql) as copy:
                copy.write(columnar.copy_csv(version_ids, first_idx=len(rows)))
        cursor.execute(
            f"""
            INSERT INTO monitoring_prediction (model_id, version_id, prediction_id, timestamp,
                segment, prediction, prediction_num, score, features, content_md5, batch_id)
            SELECT %s, version_id, prediction_id, ts, segment, prediction, prediction_num,
                score, {features}, content_md5, %s
            FROM stage_predictions WHERE true ORDER BY idx
            ON CONFLICT (model_id, prediction_id) DO NOTHING
            RETURNING prediction_id
            """,
            [model_id, batch_id],
        )
        inserted = {(pid,) for (pid,) in cursor.fetchall()}
        stored = {}
        if len(inserted) < len(keys):
            cursor.execute(
                """
                SELECT p.prediction_id, p.content_md5 FROM stage_predictions s
                JOIN monitoring_prediction p
                  ON p.model_id = %s AND p.prediction_id = s.prediction_id
                """,
                [model_id],
            )
            stored = {(pid,): md5 for pid, md5 in cursor.fetchall()}
        cursor.execute(
            f"""INSERT INTO monitoring_dirtyhour (model_id, hour)
            SELECT DISTINCT %s, {hour_of("ts")} FROM stage_predictions WHERE true
            ON CONFLICT DO NOTHING""",
            [model_id],
        )
        unstage(cursor, "stage_predictions")
    return classify(keys, inserted, stored, md5s)


DIRECT_COLUMNS = (
    "prediction_id, timestamp, version_id, prediction, prediction_num, score, segment, features, "
    "content_md5, model_id, batch_id"
)


def predictions_copy_direct(cursor, *, model_id, batch_id, rows, version_ids, columnar) -> bool:
    """COPY straight into the table keys that are not repeated in the chunk, when none is stored
    yet: the common case, at the speed of COPY. False when one is (the caller stages and
    classifies): a key stored before, or by a concurrent request, makes COPY fail and the
    savepoint undoes it. Not asking first saves a probe per row; a retried batch pays for a
    failed COPY instead."""
    if not is_postgres():
        return False
    sql = f"COPY monitoring_prediction ({DIRECT_COLUMNS}) FROM STDIN"
    try:
        with transaction.atomic():
            with cursor.cursor.copy(sql) as copy:
                for row in rows:
                    copy.write_row(
                        (
                            row.prediction_id,
                            row.timestamp,
                            version_ids[row.model_version],
                            row.prediction,
                            row.prediction_num,
                            row.score,
                            row.segment,
                            row.features_json,
                            row.content_md5,
                            model_id,
                            batch_id,
                        )
                    )
            if columnar is not None and columnar.good.num_rows:
                with cursor.cursor.copy(f"{sql} (FORMAT csv)") as copy:
                    copy.write(columnar.copy_csv(version_ids, constants=(model_id, batch_id)))
    except UniqueViolation:
        return False
    hours = {row.timestamp.replace(minute=0, second=0, microsecond=0) for row in rows}
    hours |= columnar.hours() if columnar is not None else set()
    cursor.executemany(
        "INSERT INTO monitoring_dirtyhour (model_id, hour) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        [(model_id, hour) for hour in hours],
    )
    return True


OUTCOME_STAGE = {
    "idx": "integer",
    "prediction_id": "text",
    "observed_at": "timestamptz",
    "outcome": "text",
    "outcome_num": "float8",
    "vals": "jsonb",
    "content_md5": "text",
}


def outcomes_store(*, model_id: int, batch_id: int, rows: list[OutcomeRow]) -> StoreResult:
    """Insert outcome rows; must run inside the caller's transaction."""
    staged = [
        (
            index,
            row.prediction_id,
            row.observed_at,
            row.outcome,
            row.outcome_num,
            json_text(row.values),
            row.content_md5,
        )
        for index, row in enumerate(rows)
    ]
    values = "vals::jsonb" if is_postgres() else "vals"
    with connection.cursor() as cursor:
        stage(cursor, "stage_outcomes", OUTCOME_STAGE, staged)
        cursor.execute(
            f"""
            INSERT INTO monitoring_outcome (model_id, prediction_id, observed_at, outcome,
                outcome_num, "values", content_md5, batch_id)
            SELECT %s, prediction_id, observed_at, outcome, outcome_num, {values}, content_md5, %s
            FROM stage_outcomes WHERE true ORDER BY idx
            ON CONFLICT (model_id, prediction_id, observed_at) DO NOTHING
            RETURNING prediction_id, observed_at
            """,
            [model_id, batch_id],
        )
        inserted = {(pid, observed_key(at)) for pid, at in cursor.fetchall()}
        stored = {}
        if len(inserted) < len(rows):
            cursor.execute(
                """
                SELECT o.prediction_id, o.observed_at, o.content_md5 FROM stage_outcomes s
                JOIN monitoring_outcome o ON o.model_id = %s
                 AND o.prediction_id = s.prediction_id AND o.observed_at = s.observed_at
                """,
                [model_id],
            )
            stored = {(pid, observed_key(at)): md5 for pid, at, md5 in cursor.fetchall()}
        unstage(cursor, "stage_outcomes")
    keys = [(row.prediction_id, observed_key(row.observed_at)) for row in rows]
    return classify(keys, inserted, stored, [row.content_md5 for row in rows])


def observed_key(value):
    """SQLite hands timestamps back as the text it was given; compare ours in that form."""
    if isinstance(value, datetime) and not is_postgres():
        return connection.ops.adapt_datetimefield_value(value)
    return value
