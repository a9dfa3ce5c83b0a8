"""Histograms per model, version, segment and hour (and day), written for dirty hours.

Each (version, segment) of a dirty hour gets a score histogram, a label-delay histogram, a
multiclass confusion table, and per feature of the model a histogram on the model's fixed bins
(or category counts), each with its missing count: every version's on the same bins, so the
model's whole traffic is the sum of its versions'. Day rows are the sums of their hours,
rewritten whenever one of the day's hours is, so a month reads 30 rows per feature, not 720.

Two paths read the rows, and both fill the same `ChunkRows` for `chunk_sketches`
(monitoring.pipeline.chunk_rows):
- sql (PostgreSQL): `rows_select`, one statement per chunk of dirty hours (about CHUNK_VALUES
  values), the JSON extraction done by the database;
- pandas (SQLite, the embedded default): `rows_load`, one hour's rows at a time, read into
  Python.
Before either, the pass's new feature names are found and their bins frozen, so every hour
of a pass is binned on the same edges whichever path bins it. A chunk's sketches are sent to
the database while explain's slices of the same rows are computed (`sketches_sending`).
"""

from __future__ import annotations

import gc
import itertools
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models import Q, Sum
from psycopg.copy import QueuedLibpqWriter

from common.sql import db_datetime, is_postgres
from common.time import as_utc, day_floor, day_ranges, hour_ranges
from factory.models import MLModel, ModelVersion
from monitoring.ingest.records import positive_label
from monitoring.models import FeatureBins, HourlyAggregate, Period, Sketch, SketchKind
from monitoring.pipeline.bins import HEAVY, UNKNOWN, Bins, bins_ensure, references_ensure
from monitoring.pipeline.chunk_rows import ChunkRows, rows_load, rows_select
from monitoring.pipeline.codec import (
    categorical_encode,
    categorical_merge,
    confusion_encode,
    confusion_merge,
)
from monitoring.pipeline.error_models import error_models_load
from monitoring.pipeline.isolate import isolated
from monitoring.pipeline.sketch_groups import chunk_sketches
from monitoring.pipeline.slice_aggregates import (
    by_period,
    chunk_slice_bins,
    chunk_slices,
    days_summed,
    documents_write,
)
from monitoring.stats.codec import sparse_merge_groups

# --- writing ---


def features_seen(model_id: int, hours: list[datetime]) -> tuple[set[str], dict[str, datetime]]:
    """The feature names seen in the hours that have no bins (or bins of an unknown kind),
    and the first moment each of them has a value, for those that have one.

    On PostgreSQL the names with bins are removed from each row's JSON before its keys are
    listed, so the usual pass, with no new feature, lists no key at all.
    """
    stored = FeatureBins.objects.filter(model_id=model_id).exclude(kind=UNKNOWN)
    known = list(stored.values_list("name", flat=True))
    names: set[str] = set()
    first: dict[str, datetime] = {}
    with connection.cursor() as cursor:
        for start, end in hour_ranges(hours):
            if is_postgres():
                cursor.execute(
                    """SELECT e.key, MIN(CASE WHEN jsonb_typeof(e.value) = 'null' THEN NULL
                        ELSE p.timestamp END)
                    FROM monitoring_prediction p
                    CROSS JOIN LATERAL jsonb_each(p.features - %s::text[]) e
                    WHERE p.model_id = %s AND p.timestamp >= %s AND p.timestamp < %s
                        AND jsonb_typeof(p.features) = 'object'
                    GROUP BY e.key""",
                    [known, model_id, start, end],
                )
            else:
                cursor.execute(
                    """SELECT e.key, MIN(CASE WHEN e.type = 'null' THEN NULL ELSE p.timestamp
                        END)
                    FROM monitoring_prediction p, json_each(p.features) e
                    WHERE p.model_id = %s AND p.timestamp >= %s AND p.timestamp < %s
                    GROUP BY e.key""",
                    [model_id, db_datetime(start), db_datetime(end)],
                )
            for name, moment in cursor.fetchall():
                names.add(name)
                if moment is not None:
                    moment = as_utc(moment)  # SQLite answers text
                    first[name] = min(first.get(name, moment), moment)
    return names, first


def hours_bins(model: MLModel, hours: list[datetime]) -> dict[int, dict[str, Bins]]:
    """The model's bins, freezing new features first (every hour of a pass is then binned on
    the same edges, whichever path bins it), under every version with predictions in the
    hours: each version's features are counted on the model's bins, so they add up. The
    versions' references are put on the bins too, once."""
    names, present = features_seen(model.pk, hours)
    bins = bins_ensure(model=model, names=names, present=present)
    # The hours' counts are already rewritten in this transaction: their versions are there.
    counted = HourlyAggregate.objects.filter(model=model, hour__in=hours)
    version_ids = set(counted.values_list("version_id", flat=True).distinct())
    for version in ModelVersion.objects.filter(pk__in=version_ids).defer(*HEAVY):
        references_ensure(version=version, bins=bins)
    return {version_id: bins for version_id in version_ids}


CHUNK_VALUES = 4_000_000  # a chunk's columns hold about this many values (rows x features)


def chunk_rows_limit(bins: dict[int, dict[str, Bins]]) -> int:
    """Predictions a chunk holds: fewer as there are more features, so its memory is bounded
    (about 12 bytes a value as read, 8 once in NumPy)."""
    features = len({name for one in bins.values() for name in one})
    return max(1, CHUNK_VALUES // (features + 6))


@dataclass
class Chunk:
    """Dirty hours aggregated together, and the days among them whose every hour with
    predictions is dirty and in this chunk: their day rows are counted from the same rows,
    not merged from stored hour rows."""

    hours: list[datetime]
    days: list[datetime] = field(default_factory=list)


def hour_sizes(model: MLModel, hours: list[datetime]) -> tuple[dict[datetime, int], set]:
    """The dirty hours' prediction counts, and the days all of whose hours with predictions
    are dirty (counts are already rewritten in this transaction)."""
    days = sorted({day_floor(hour) for hour in hours})
    in_days = Q()
    for start, end in day_ranges(days):
        in_days |= Q(hour__gte=start, hour__lt=end)
    counted = HourlyAggregate.objects.filter(in_days, model=model)
    sizes: dict[datetime, int] = {}
    for hour, n in counted.values("hour").annotate(n=Sum("predictions")).values_list("hour", "n"):
        sizes[as_utc(hour)] = n
    dirty = set(hours)
    incomplete = {day_floor(hour) for hour in sizes if hour not in dirty}
    return sizes, set(days) - incomplete


def hour_chunks(model: MLModel, hours: list[datetime], limit: int) -> list[Chunk]:
    """Dirty hours in chunks of at most ``limit`` predictions, a day's hours together when
    they fit (a single hour may hold more)."""
    sizes, complete = hour_sizes(model, hours)
    chunks: list[Chunk] = []
    current, rows = Chunk([]), 0
    for day, day_hours in itertools.groupby(hours, key=day_floor):
        day_hours = list(day_hours)
        size = sum(sizes.get(hour, 0) for hour in day_hours)
        if current.hours and rows + size > limit:
            chunks.append(current)
            current, rows = Chunk([]), 0
        if size > limit:  # the day alone is too big: its hours in chunks, the day merged
            for hour in day_hours:
                if current.hours and rows + sizes.get(hour, 0) > limit:
                    chunks.append(current)
                    current, rows = Chunk([]), 0
                current.hours.append(hour)
                rows += sizes.get(hour, 0)
            continue
        current.hours += day_hours
        rows += size
        if day in complete:
            current.days.append(day)
    return [*chunks, current] if current.hours else chunks


def sketch_chunks(
    model: MLModel, hours: list[datetime], bins: dict[int, dict[str, Bins]], path: str
) -> list[Chunk]:
    """The hours a chunk at a time, so memory does not grow with the number of dirty hours:
    an hour (pandas, whose rows are Python objects) or a bounded number of values (sql)."""
    if path == "pandas":
        return [Chunk([hour]) for hour in hours]
    return hour_chunks(model, hours, chunk_rows_limit(bins))


def chunk_read(
    model: MLModel, chunk: Chunk, bins: dict[int, dict[str, Bins]], path: str
) -> ChunkRows:
    read = rows_load if path == "pandas" else rows_select
    return read(model=model, hours=chunk.hours, bins=bins, positive=positive_label(model))


def chunk_compute(
    model: MLModel, chunk: Chunk, bins: dict[int, dict[str, Bins]], rows: ChunkRows
) -> list[tuple]:
    """The chunk's sketch rows: its hours', and its whole days' from the same rows."""
    error_models = error_models_load(model)
    out = chunk_sketches(
        model=model, bins=bins, rows=rows, period=Period.HOUR, error_models=error_models
    )
    if chunk.days:
        days = rows.days_only([int(day.timestamp()) for day in chunk.days])
        out += chunk_sketches(
            model=model, bins=bins, rows=days, period=Period.DAY, error_models=error_models
        )
    return out


def chunk_write(model: MLModel, chunk: Chunk, bins: dict[int, dict[str, Bins]], path: str) -> None:
    """The chunk's sketches and explain's slice documents, from one read of its rows. The
    slices of its hours are computed while the database stores the sketches."""
    rows = chunk_read(model, chunk, bins, path)
    Sketch.objects.filter(model=model, period=Period.HOUR, start__in=chunk.hours).delete()
    Sketch.objects.filter(model=model, period=Period.DAY, start__in=chunk.days).delete()
    frozen = chunk_slice_bins(model, bins)
    with sketches_sending(chunk_compute(model, chunk, bins, rows)):
        new = chunk_slices(frozen=frozen, rows=rows)
        hour_documents = by_period(new, 3600)
    day_documents = days_summed(model, chunk.hours, chunk.days, new)
    documents_write(model, chunk.hours, hour_documents, day_documents)


@contextmanager
def collector_paused():
    """Python's cycle collector off while a chunk is computed. Its hundreds of thousands of
    sketch tuples hold no cycle, yet their allocation makes the collector walk every live
    object again and again: a third of the time the sketches take."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def chunk_refresh(
    model: MLModel, chunk: Chunk, bins: dict[int, dict[str, Bins]], path: str
) -> tuple[dict[datetime, str], list[datetime]]:
    """Write a chunk's sketches in a savepoint; a failing chunk is tried again an hour at a
    time, so only the hours that fail alone are left out. Returns them with their errors,
    and the days whose rows were written."""
    with collector_paused():
        error = isolated(lambda: chunk_write(model, chunk, bins, path))
    if error is None:
        return {}, chunk.days
    if len(chunk.hours) == 1:
        return {chunk.hours[0]: error}, []
    failed: dict[datetime, str] = {}
    for hour in chunk.hours:
        failed |= chunk_refresh(model, Chunk([hour]), bins, path)[0]
    return failed, []


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


# Their types in the table, for a binary COPY (a quarter of the time of a text one, which
# writes each sketch as hex).
SKETCH_TYPES = (
    "bigint",
    "bigint",
    "varchar",
    "varchar",
    "timestamptz",
    "varchar",
    "varchar",
    "integer",
    "integer",
    "bytea",
)


def sketches_write(rows: list[tuple]) -> None:
    """Insert sketch rows (values in SKETCH_COLUMNS order)."""
    with sketches_sending(rows):
        pass


@contextmanager
def sketches_sending(rows: list[tuple]):
    """Insert sketch rows while the block runs: on PostgreSQL, a binary COPY whose data a
    thread of psycopg's sends (`QueuedLibpqWriter`), so the database stores them on one core
    while the block computes on the other. The block must not query (the connection is busy
    with the COPY); leaving it waits for the database to finish."""
    if not is_postgres():
        Sketch.objects.bulk_create(
            [Sketch(**dict(zip(SKETCH_COLUMNS, row, strict=True))) for row in rows], 1000
        )
        yield
        return
    with connection.cursor() as cursor:
        sql = f"COPY monitoring_sketch ({', '.join(SKETCH_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        with cursor.cursor.copy(sql, writer=QueuedLibpqWriter(cursor.cursor)) as copy:
            copy.set_types(SKETCH_TYPES)
            for row in rows:
                copy.write_row(row)
            yield


DAYS_PER_MERGE = 7  # the hour rows of a week of days are in memory at once


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
    counted: set[datetime] = set()
    for chunk in sketch_chunks(model, hours, bins, path):
        chunk_failed, days_written = chunk_refresh(model, chunk, bins, path)
        failed |= chunk_failed
        counted.update(days_written)
    days = sorted({day_floor(hour) for hour in hours} - counted)
    Sketch.objects.filter(model=model, period=Period.DAY, start__in=days).delete()
    for first in range(0, len(days), DAYS_PER_MERGE):
        sketches_write(day_rows(model, days[first : first + DAYS_PER_MERGE]))
    return failed


# --- reading ---
