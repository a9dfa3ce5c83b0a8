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

from django.db import connection
from django.db.models import Sum

from common.sql import db_datetime, is_postgres
from common.time import DAY, as_utc, hour_ranges
from factory.models import MLModel, ModelVersion
from monitoring.ingest.records import positive_label
from monitoring.models import FeatureBins, HourlyAggregate, Period, Sketch, SketchKind
from monitoring.pipeline.bins import UNKNOWN, Bins, bins_ensure
from monitoring.pipeline.chunk_rows import rows_load, rows_select
from monitoring.pipeline.codec import (
    categorical_encode,
    categorical_merge,
    confusion_encode,
    confusion_merge,
)
from monitoring.pipeline.isolate import isolated
from monitoring.pipeline.sketch_groups import SketchRow, chunk_sketches
from monitoring.stats.codec import sparse_merge_groups

# --- writing ---


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


CHUNK_VALUES = 4_000_000  # a chunk's columns hold about this many values (rows x features)


def chunk_rows_limit(bins: dict[int, dict[str, Bins]]) -> int:
    """Predictions a chunk holds: fewer as there are more features, so its memory is bounded
    (about 12 bytes a value as read, 8 once in NumPy)."""
    features = len({name for one in bins.values() for name in one})
    return max(1, CHUNK_VALUES // (features + 6))


def hour_chunks(model: MLModel, hours: list[datetime], limit: int) -> list[list[datetime]]:
    """Dirty hours in groups of at most ``limit`` predictions (or one hour, when it alone
    holds more); their hourly counts are already rewritten in this transaction."""
    sizes = dict(
        HourlyAggregate.objects.filter(model=model, hour__in=hours)
        .values("hour")
        .annotate(n=Sum("predictions"))
        .values_list("hour", "n")
    )
    chunks, current, rows = [], [], 0
    for hour in hours:
        size = sizes.get(hour, 0)
        if current and rows + size > limit:
            chunks.append(current)
            current, rows = [], 0
        current.append(hour)
        rows += size
    return [*chunks, current] if current else chunks


def sketch_chunks(
    model: MLModel, hours: list[datetime], bins: dict[int, dict[str, Bins]], path: str
) -> list[list[datetime]]:
    """The hours a chunk at a time, so memory does not grow with the number of dirty hours:
    an hour (pandas, whose rows are Python objects) or a bounded number of values (sql)."""
    if path == "pandas":
        return [[hour] for hour in hours]
    return hour_chunks(model, hours, chunk_rows_limit(bins))


def chunk_compute(
    model: MLModel, chunk: list[datetime], bins: dict[int, dict[str, Bins]], path: str
) -> list[SketchRow]:
    read = rows_load if path == "pandas" else rows_select
    rows = read(model=model, hours=chunk, bins=bins, positive=positive_label(model))
    return chunk_sketches(model=model, bins=bins, rows=rows)


def chunk_write(
    model: MLModel, chunk: list[datetime], bins: dict[int, dict[str, Bins]], path: str
) -> None:
    Sketch.objects.filter(model=model, period=Period.HOUR, start__in=chunk).delete()
    sketches_write(
        [
            (model.pk, version_id, segment, Period.HOUR, hour, *sketch)
            for version_id, segment, hour, *sketch in chunk_compute(model, chunk, bins, path)
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


DAYS_PER_MERGE = 7  # the hour rows of a week of days are in memory at once


def day_ranges(days: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted days as [start, end) ranges of consecutive days."""
    ranges: list[list[datetime]] = []
    for day in days:
        if ranges and ranges[-1][1] == day:
            ranges[-1][1] = day + DAY
        else:
            ranges.append([day, day + DAY])
    return [(start, end) for start, end in ranges]


def day_rows(model: MLModel, days: list[datetime]) -> list[tuple]:
    """The days' rows: the sums of their hour rows, per version, segment, kind and name.
    Histograms are summed all at once (`sparse_merge_groups`); category counts and
    confusion tables, a few small documents a group, one group at a time."""
    keys: dict[tuple, int] = {}
    totals: list[list[int]] = []  # per group: n, missing
    histograms: dict[str, tuple[list, list]] = {}
    documents: dict[int, list[bytes]] = {}
    kinds: list[str] = []
    for start, end in day_ranges(days):
        hours = Sketch.objects.filter(
            model=model, period=Period.HOUR, start__gte=start, start__lt=end
        ).order_by("start")
        for version_id, segment, hour, kind, name, n, missing, data in hours.values_list(
            "version_id", "segment", "start", "kind", "name", "n", "missing", "data"
        ):
            key = (version_id, segment, as_utc(hour).replace(hour=0), kind, name)
            group = keys.setdefault(key, len(keys))
            if group == len(totals):
                totals.append([0, 0])
                kinds.append(kind)
            totals[group][0] += n
            totals[group][1] += missing
            if kind in (SketchKind.CATEGORICAL, SketchKind.CONFUSION):
                documents.setdefault(group, []).append(bytes(data))
            else:
                groups, items = histograms.setdefault(kind, ([], []))
                groups.append(group)
                items.append(bytes(data))
    merged = {}
    for groups, items in histograms.values():
        merged |= sparse_merge_groups(groups, items)
    for group, datas in documents.items():
        merged[group] = document_merge(kinds[group], datas)
    return [
        (model.pk, version_id, segment, Period.DAY, day, kind, name, *totals[group], merged[group])
        for (version_id, segment, day, kind, name), group in keys.items()
    ]


def document_merge(kind: str, datas: list[bytes]) -> bytes:
    if kind == SketchKind.CATEGORICAL:
        return categorical_encode(*categorical_merge(datas))
    return confusion_encode(confusion_merge(datas))


def day_sketches(model: MLModel, day: datetime) -> list[Sketch]:
    return [Sketch(**dict(zip(SKETCH_COLUMNS, row, strict=True))) for row in day_rows(model, [day])]


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
    for chunk in sketch_chunks(model, hours, bins, path):
        failed |= chunk_refresh(model, chunk, bins, path)
    days = sorted({hour.replace(hour=0) for hour in hours})
    Sketch.objects.filter(model=model, period=Period.DAY, start__in=days).delete()
    for first in range(0, len(days), DAYS_PER_MERGE):
        sketches_write(day_rows(model, days[first : first + DAYS_PER_MERGE]))
    return failed


# --- reading ---
