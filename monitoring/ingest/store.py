"""Bulk storage of validated rows: staging table, then one INSERT of the keys not stored yet.

Predictions whose ids are all new go straight into their table with COPY instead. Otherwise
the INSERT skips keys already stored (and all but the first of a key in the chunk); rows it
skipped are duplicates (same content hash) or conflicts (other content under the same key).
PostgreSQL fills the staging table with COPY, SQLite with executemany; the rest is the same SQL.

Keys are unique across months although the tables are partitioned by month on PostgreSQL,
where a unique index cannot span partitions: each stored prediction's key is also written to
`PredictionKey`, whose unique index does. A writer takes the model's advisory lock for its
table (held to the end of its transaction). The common case (all ids new) copies the
predictions first, then their keys under the lock, so that concurrent writers copy side by
side and only the keys take turns; a key there already, from any month, fails that COPY, and
the body goes the other way: the lock first, then only keys not in the predictions inserted
(a key whose prediction was deleted since costs that detour, never a wrong answer).
Outcomes' keys are looked up in every partition. A second writer of the same model sees the
first's rows, committed. SQLite runs one write statement at a time.

A prediction older than the raw horizon (common.retention) is expired: its hour is sealed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
from django.db import connection, transaction
from django.utils import timezone
from psycopg.errors import UniqueViolation

from common.retention import raw_horizon
from common.sql import db_datetime, hour_of, is_postgres
from monitoring.ingest.columnar import ColumnarChunk
from monitoring.ingest.partitions import partitions_ensure
from monitoring.ingest.records import OutcomeRow, PredictionRow

STAGE_BATCH_ROWS = 5_000  # rows per executemany on SQLite
# pg_advisory_xact_lock(space, model_id): one writer of a model's predictions (or outcomes) at
# a time, from its key lookup to its commit.
PREDICTIONS_LOCK = 0x43414E41  # "CANA"
OUTCOMES_LOCK = 0x43414E42  # "CANB"


@dataclass
class StoreResult:
    accepted: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    conflicts: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)


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


def keys_lock(cursor, space: int, model_id: int) -> None:
    """Be the model's only writer of this table until the transaction ends (PostgreSQL)."""
    if is_postgres():
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [space, model_id])


def classify(
    keys: list[tuple],
    inserted: set[tuple],
    stored_md5: dict[tuple, str],
    md5s: list[str],
    expired: set[int] = frozenset(),
) -> StoreResult:
    """Sort staged rows into accepted, duplicates, conflicts and expired; the first of a key
    wins."""
    result = StoreResult(expired=sorted(expired))
    for index, (key, md5) in enumerate(zip(keys, md5s, strict=True)):
        if index in expired:
            continue
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
    "scores": "jsonb",
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
    transaction; mark the hours of what was stored dirty."""
    ids = pa.chunked_array(
        [pa.array([row.prediction_id for row in rows], pa.string())]
        + (columnar.good["prediction_id"].chunks if columnar is not None else []),
        pa.string(),
    )
    hours = {row.timestamp.replace(minute=0, second=0, microsecond=0) for row in rows}
    hours |= columnar.hours() if columnar is not None else set()
    horizon = raw_horizon(timezone.now())
    with transaction.atomic(), connection.cursor() as cursor:
        partitions_ensure(hour for hour in hours if hour >= horizon)
        if (
            is_postgres()
            and min(hours, default=horizon) >= horizon
            and pc.count_distinct(ids).as_py() == len(ids)
            and predictions_copy_fresh(cursor, model_id, batch_id, rows, version_ids, columnar)
        ):
            dirty_hours_add(cursor, model_id, hours)
            return StoreResult(accepted=list(range(len(ids))))
        keys_lock(cursor, PREDICTIONS_LOCK, model_id)
        return predictions_stage_insert(
            cursor, model_id, batch_id, rows, version_ids, columnar, ids, horizon
        )


def predictions_copy_fresh(cursor, model_id, batch_id, rows, version_ids, columnar) -> bool:
    """COPY the rows, then their keys under the model's lock; undo both and return False if
    a key was stored before.

    The lock is taken after the rows' COPY and held to the commit, so concurrent writers copy
    at the same time and only their keys take turns."""
    try:
        with transaction.atomic():
            predictions_copy(cursor, model_id, batch_id, rows, version_ids, columnar)
            keys_lock(cursor, PREDICTIONS_LOCK, model_id)
            keys_copy(cursor, model_id, rows, columnar)
            return True
    except UniqueViolation:  # a key stored before, in any month
        return False


def predictions_stage_insert(
    cursor, model_id, batch_id, rows, version_ids, columnar, ids, horizon
) -> StoreResult:
    """Stage the rows, insert the first of each new key that is not expired, classify."""
    features = "features::jsonb" if is_postgres() else "features"
    scores = "scores::jsonb" if is_postgres() else "scores"
    keys = [(pid,) for pid in ids.to_pylist()]
    md5s = [row.content_md5 for row in rows]
    if columnar is not None:
        md5s += columnar.good["content_md5"].to_pylist()
    staged = [(index, *row_values(row, version_ids)) for index, row in enumerate(rows)]
    stage(cursor, "stage_predictions", PREDICTION_STAGE, staged)
    if columnar is not None and columnar.good.num_rows:
        names = ", ".join(PREDICTION_STAGE)
        sql = f"COPY stage_predictions ({names}) FROM STDIN (FORMAT csv)"
        with cursor.cursor.copy(sql) as copy:
            copy.write(columnar.copy_csv(version_ids, first_idx=len(rows)))
    params = {"model": model_id, "batch": batch_id, "horizon": db_datetime(horizon)}
    cursor.execute(
        f"""
        INSERT INTO monitoring_prediction (model_id, version_id, prediction_id, timestamp,
            segment, prediction, prediction_num, score, features, scores, content_md5, batch_id)
        SELECT %(model)s, version_id, prediction_id, ts, segment, prediction, prediction_num,
            score, {features}, {scores}, content_md5, %(batch)s
        FROM stage_predictions s
        WHERE s.idx IN (SELECT MIN(idx) FROM stage_predictions WHERE ts >= %(horizon)s
                        GROUP BY prediction_id)
          AND NOT EXISTS (SELECT 1 FROM monitoring_prediction p
                          WHERE p.model_id = %(model)s AND p.prediction_id = s.prediction_id)
        ORDER BY idx
        RETURNING prediction_id, timestamp
        """,
        params,
    )
    returned = cursor.fetchall()
    keys_refresh(cursor, model_id, returned)
    inserted = {(pid,) for pid, _ in returned}
    cursor.execute("SELECT idx FROM stage_predictions WHERE ts < %(horizon)s", params)
    expired = {idx for (idx,) in cursor.fetchall()}
    stored = {}
    if len(inserted) + len(expired) < len(keys):
        cursor.execute(
            """
            SELECT p.prediction_id, p.content_md5 FROM stage_predictions s
            JOIN monitoring_prediction p
              ON p.model_id = %(model)s AND p.prediction_id = s.prediction_id
            """,
            params,
        )
        stored = {(pid,): md5 for pid, md5 in cursor.fetchall()}
    cursor.execute(
        f"""INSERT INTO monitoring_dirtyhour (model_id, hour)
        SELECT DISTINCT %(model)s, {hour_of("ts")} FROM stage_predictions
        WHERE ts >= %(horizon)s
        ON CONFLICT DO NOTHING""",
        params,
    )
    unstage(cursor, "stage_predictions")
    return classify(keys, inserted, stored, md5s, expired)


def row_values(row: PredictionRow, version_ids: dict[str, int]) -> tuple:
    """A prediction's stored values, in the order of PREDICTION_STAGE after `idx` (and of
    DIRECT_COLUMNS before the model and batch)."""
    return (
        row.prediction_id,
        row.timestamp,
        version_ids[row.model_version],
        row.prediction,
        row.prediction_num,
        row.score,
        row.segment,
        row.features_json,
        row.scores_json,
        row.content_md5,
    )


DIRECT_COLUMNS = (
    "prediction_id, timestamp, version_id, prediction, prediction_num, score, segment, features, "
    "scores, content_md5, model_id, batch_id"
)


def predictions_copy(cursor, model_id, batch_id, rows, version_ids, columnar) -> None:
    """COPY straight into the table: the common case (new ids, none repeated, none expired),
    at the speed of COPY. The caller checks the ids after (predictions_copy_fresh)."""
    sql = f"COPY monitoring_prediction ({DIRECT_COLUMNS}) FROM STDIN"
    with cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row((*row_values(row, version_ids), model_id, batch_id))
    if columnar is not None and columnar.good.num_rows:
        with cursor.cursor.copy(f"{sql} (FORMAT csv)") as copy:
            copy.write(columnar.copy_csv(version_ids, constants=(model_id, batch_id)))


KEYS_COPY = 'COPY monitoring_predictionkey (model_id, prediction_id, "timestamp") FROM STDIN'


def keys_copy(cursor, model_id: int, rows: list[PredictionRow], columnar) -> None:
    """Record the keys of rows just copied (PostgreSQL); UniqueViolation if one is there."""
    if rows:
        with cursor.cursor.copy(KEYS_COPY) as copy:
            for row in rows:
                copy.write_row((model_id, row.prediction_id, row.timestamp))
    if columnar is not None and columnar.good.num_rows:
        with cursor.cursor.copy(f"{KEYS_COPY} (FORMAT csv)") as copy:
            copy.write(columnar.keys_csv(model_id))


def keys_refresh(cursor, model_id: int, keys: list[tuple[str, datetime]]) -> None:
    """Record the keys of rows inserted after a lookup in the predictions themselves
    (PostgreSQL), over any key left by a prediction since deleted."""
    if not is_postgres() or not keys:
        return
    ids, moments = zip(*keys, strict=True)
    cursor.execute(
        """INSERT INTO monitoring_predictionkey (model_id, prediction_id, "timestamp")
        SELECT %s, * FROM unnest(%s::text[], %s::timestamptz[])
        ON CONFLICT (model_id, prediction_id) DO UPDATE SET "timestamp" = EXCLUDED."timestamp"
        """,
        [model_id, list(ids), list(moments)],
    )


def dirty_hours_add(cursor, model_id: int, hours: set) -> None:
    cursor.executemany(
        "INSERT INTO monitoring_dirtyhour (model_id, hour) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        [(model_id, hour) for hour in hours],
    )


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
    with transaction.atomic(), connection.cursor() as cursor:
        partitions_ensure([timezone.now()])  # received_at, the transaction's start
        keys_lock(cursor, OUTCOMES_LOCK, model_id)
        stage(cursor, "stage_outcomes", OUTCOME_STAGE, staged)
        cursor.execute(
            f"""
            INSERT INTO monitoring_outcome (model_id, prediction_id, observed_at, outcome,
                outcome_num, "values", content_md5, batch_id)
            SELECT %(model)s, prediction_id, observed_at, outcome, outcome_num, {values},
                content_md5, %(batch)s
            FROM stage_outcomes s
            WHERE s.idx IN (SELECT MIN(idx) FROM stage_outcomes
                            GROUP BY prediction_id, observed_at)
              AND NOT EXISTS (SELECT 1 FROM monitoring_outcome o
                              WHERE o.model_id = %(model)s AND o.prediction_id = s.prediction_id
                                AND o.observed_at = s.observed_at)
            ORDER BY idx
            RETURNING prediction_id, observed_at
            """,
            {"model": model_id, "batch": batch_id},
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
