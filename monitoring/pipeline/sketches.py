"""Histograms per model, version, segment and hour (and day), written for dirty hours.

Each (version, segment) of a dirty hour gets a score histogram, a label-delay histogram, a
multiclass confusion table, and per feature a histogram on the version's fixed bins (or
category counts), each with its missing count. Day rows are the sums of their hours,
rewritten whenever one of the day's hours is, so a month reads 30 rows per feature, not 720.

Two paths read the rows, and both fill the same `GroupColumns` for `group_sketches`:
- sql (PostgreSQL): monitoring.pipeline.sketch_sql, one statement per chunk of dirty hours (about
  SQL_CHUNK_PREDICTIONS predictions), the JSON extraction done by the database;
- pandas (SQLite, the embedded default): one hour's rows at a time, read into Python.
Before either, the pass's new feature names are found and their bins frozen, so every hour
of a pass is binned on the same edges whichever path bins it.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from django.db import connection
from django.db.models import Sum

from common.sql import db_datetime, is_postgres
from common.time import DAY, HOUR, hour_ranges
from factory.models import MLModel, ModelVersion
from monitoring.ingest.records import positive_label
from monitoring.models import FeatureBins, HourlyAggregate, Period, Prediction, Sketch, SketchKind
from monitoring.pipeline.bins import UNKNOWN, Bins, bins_ensure
from monitoring.pipeline.codec import (
    categorical_encode,
    categorical_merge,
    confusion_encode,
    confusion_merge,
)
from monitoring.pipeline.isolate import isolated
from monitoring.pipeline.sketch_groups import frame_columns, group_sketches
from monitoring.pipeline.sketch_sql import chunk_sketches
from monitoring.stats.codec import (
    sparse_merge,
)

# --- writing ---


def hour_frame(model: MLModel, start: datetime) -> pd.DataFrame:
    rows = Prediction.objects.filter(
        model_id=model.pk, timestamp__gte=start, timestamp__lt=start + HOUR
    ).values_list(
        "version_id",
        "segment",
        "prediction",
        "score",
        "features",
        "label__outcome",
        "label__delay_s",
    )
    columns = ["version_id", "segment", "prediction", "score", "features", "outcome", "delay_s"]
    return pd.DataFrame.from_records(list(rows), columns=columns)


def hour_sketches(
    model: MLModel, start: datetime, bins: dict[int, dict[str, Bins]]
) -> dict[tuple, list[tuple[str, str, int, int, bytes]]]:
    """The pandas path: one hour's sketches from its rows read into Python."""
    frame = hour_frame(model, start)
    sketches = {}
    for (version_id, segment), group in frame.groupby(["version_id", "segment"], sort=False):
        features = bins.get(version_id, {})
        columns = frame_columns(group, features, positive_label(model))
        sketches[(version_id, segment, start)] = group_sketches(
            model=model, bins=features, group=columns
        )
    return sketches


def features_seen(model_id: int, hours: list[datetime]) -> dict[int, tuple[set, set]]:
    """Per version in the hours: the feature names seen that have no bins (or bins of an
    unknown kind), and those of them with a value somewhere.

    On PostgreSQL the names with bins are removed from each row's JSON before its keys are
    listed, so the usual pass, with no new feature, lists no key at all.
    """
    stored = FeatureBins.objects.filter(model_id=model_id).exclude(kind=UNKNOWN)
    known = list(stored.values_list("version_id", "name"))
    seen: dict[int, tuple[set, set]] = {}
    with connection.cursor() as cursor:
        for start, end in hour_ranges(hours):
            if is_postgres():
                cursor.execute(
                    """WITH known AS (
                        SELECT version_id, array_agg(name) AS names
                        FROM unnest(%s::bigint[], %s::text[]) AS t(version_id, name)
                        GROUP BY version_id)
                    SELECT p.version_id, e.key, MAX(CASE WHEN jsonb_typeof(e.value) = 'null'
                        THEN 0 ELSE 1 END)
                    FROM monitoring_prediction p
                    LEFT JOIN known k ON k.version_id = p.version_id
                    CROSS JOIN LATERAL jsonb_each(
                        CASE WHEN k.names IS NULL THEN p.features ELSE p.features - k.names END
                    ) e
                    WHERE p.model_id = %s AND p.timestamp >= %s AND p.timestamp < %s
                    GROUP BY p.version_id, e.key""",
                    [[v for v, _ in known], [n for _, n in known], model_id, start, end],
                )
            else:
                cursor.execute(
                    """SELECT p.version_id, e.key, MAX(CASE WHEN e.type = 'null' THEN 0 ELSE 1
                        END)
                    FROM monitoring_prediction p, json_each(p.features) e
                    WHERE p.model_id = %s AND p.timestamp >= %s AND p.timestamp < %s
                    GROUP BY p.version_id, e.key""",
                    [model_id, db_datetime(start), db_datetime(end)],
                )
            for version_id, name, present in cursor.fetchall():
                names, with_value = seen.setdefault(version_id, (set(), set()))
                names.add(name)
                if present:
                    with_value.add(name)
    return seen


def hours_bins(model: MLModel, hours: list[datetime]) -> dict[int, dict[str, Bins]]:
    """The frozen bins of every version with predictions in the hours, freezing new features
    first: every hour of a pass is then binned on the same edges, whichever path bins it."""
    seen = features_seen(model.pk, hours)
    # The hours' counts are already rewritten in this transaction: their versions are there.
    counted = HourlyAggregate.objects.filter(model=model, hour__in=hours)
    version_ids = set(seen) | set(counted.values_list("version_id", flat=True).distinct())
    nothing: tuple[set, set] = (set(), set())
    return {
        version.pk: bins_ensure(
            version=version,
            names=seen.get(version.pk, nothing)[0],
            present=seen.get(version.pk, nothing)[1],
        )
        for version in ModelVersion.objects.filter(pk__in=version_ids).defer("lineage")
    }


SQL_CHUNK_PREDICTIONS = 200_000  # rows per statement: a few arrays of 200k values per feature


def hour_chunks(model: MLModel, hours: list[datetime]) -> list[list[datetime]]:
    """Dirty hours in groups of about SQL_CHUNK_PREDICTIONS predictions (their hourly counts
    are already rewritten in this transaction)."""
    sizes = dict(
        HourlyAggregate.objects.filter(model=model, hour__in=hours)
        .values("hour")
        .annotate(n=Sum("predictions"))
        .values_list("hour", "n")
    )
    chunks, current, rows = [], [], 0
    for hour in hours:
        size = sizes.get(hour, 0)
        if current and rows + size > SQL_CHUNK_PREDICTIONS:
            chunks.append(current)
            current, rows = [], 0
        current.append(hour)
        rows += size
    return [*chunks, current] if current else chunks


def sketch_chunks(model: MLModel, hours: list[datetime], path: str) -> list[list[datetime]]:
    """The hours a chunk at a time: an hour (pandas) or a bounded number of predictions
    (sql), so memory does not grow with the number of dirty hours."""
    if path == "pandas":
        return [[hour] for hour in hours]
    return hour_chunks(model, hours)


def chunk_compute(
    model: MLModel, chunk: list[datetime], bins: dict[int, dict[str, Bins]], path: str
) -> dict[tuple, list[tuple[str, str, int, int, bytes]]]:
    if path == "pandas":
        return hour_sketches(model, chunk[0], bins)
    return chunk_sketches(model=model, hours=chunk, bins=bins, positive=positive_label(model))


def chunk_write(
    model: MLModel, chunk: list[datetime], bins: dict[int, dict[str, Bins]], path: str
) -> None:
    Sketch.objects.filter(model=model, period=Period.HOUR, start__in=chunk).delete()
    sketches_write(
        [
            (model.pk, version_id, segment, Period.HOUR, hour, *sketch)
            for (version_id, segment, hour), items in chunk_compute(
                model, chunk, bins, path
            ).items()
            for sketch in items
        ]
    )


def chunk_refresh(
    model: MLModel, chunk: list[datetime], bins: dict[int, dict[str, Bins]], path: str
) -> dict[datetime, str]:
    """Write a chunk's sketches in a savepoint; a failing chunk is tried again an hour at a
    time, so only the hours that fail alone are left out. Returns them with their errors."""
    error = isolated(lambda: chunk_write(model, chunk, bins, path))
    if error is None:
        return {}
    if len(chunk) == 1:
        return {chunk[0]: error}
    failed: dict[datetime, str] = {}
    for hour in chunk:
        failed |= chunk_refresh(model, [hour], bins, path)
    return failed


SKETCH_COLUMNS = (
    "model_id",
    "version_id",
    "segment",
    "period",
    "start",
    "kind",
    "name",
    "n",
    "missing",
    "data",
)


def sketches_write(rows: list[tuple]) -> None:
    """Insert sketch rows (values in SKETCH_COLUMNS order): COPY on PostgreSQL."""
    if not is_postgres():
        Sketch.objects.bulk_create(
            [Sketch(**dict(zip(SKETCH_COLUMNS, row, strict=True))) for row in rows], 1000
        )
        return
    with connection.cursor() as cursor:
        sql = f"COPY monitoring_sketch ({', '.join(SKETCH_COLUMNS)}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)


def day_rows(model: MLModel, day: datetime) -> list[tuple]:
    """A day's rows: the sums of its hour rows, per version, segment, kind and name."""
    groups: dict[tuple, list] = {}
    for row in Sketch.objects.filter(
        model=model, period=Period.HOUR, start__gte=day, start__lt=day + DAY
    ).values_list("version_id", "segment", "kind", "name", "n", "missing", "data"):
        groups.setdefault(row[:4], []).append(row[4:])
    out = []
    for (version_id, segment, kind, name), items in groups.items():
        datas = [bytes(data) for _, _, data in items]
        if kind == SketchKind.CATEGORICAL:
            data = categorical_encode(*categorical_merge(datas))
        elif kind == SketchKind.CONFUSION:
            data = confusion_encode(confusion_merge(datas))
        else:
            data = sparse_merge(datas)
        n, missing = sum(item[0] for item in items), sum(item[1] for item in items)
        out.append((model.pk, version_id, segment, Period.DAY, day, kind, name, n, missing, data))
    return out


def day_sketches(model: MLModel, day: datetime) -> list[Sketch]:
    return [Sketch(**dict(zip(SKETCH_COLUMNS, row, strict=True))) for row in day_rows(model, day)]


def sketches_refresh(
    *, model: MLModel, hours: list[datetime], path: str | None = None
) -> dict[datetime, str]:
    """Rewrite the sketches of the given hours, then of the days they fall in; returns the
    hours that failed, with their errors (their old sketches stay).

    ``path`` is ``sql`` (set-based, PostgreSQL only; its default there) or ``pandas`` (the
    rows read into Python an hour at a time; SQLite's). Both write the same sketches.
    """
    if not hours:
        return {}
    path = path or ("sql" if is_postgres() else "pandas")
    bins = hours_bins(model, hours)
    failed: dict[datetime, str] = {}
    for chunk in sketch_chunks(model, hours, path):
        failed |= chunk_refresh(model, chunk, bins, path)
    days = sorted({hour.replace(hour=0) for hour in hours})
    Sketch.objects.filter(model=model, period=Period.DAY, start__in=days).delete()
    for day in days:
        sketches_write(day_rows(model, day))
    return failed


# --- reading ---
