import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db.models import CharField, Q
from django.db.models.expressions import RawSQL

from common.sql import is_postgres
from common.time import DAY, day_ceil, day_floor
from factory.models import MLModel
from monitoring.metrics.traffic import shared_cells, shared_days
from monitoring.models import Period, Sketch


@dataclass(frozen=True)
class SketchRow:
    start: datetime
    period: str
    version_id: int
    segment: str
    kind: str
    name: str
    n: int
    data: bytes


def period_cover(start: datetime | None, end: datetime | None, *, hourly: bool = False):
    """Rows covering [start, end): whole days from day rows, the ragged ends from hour rows."""
    hours = Q(period=Period.HOUR)
    if start:
        hours &= Q(start__gte=start)
    if end:
        hours &= Q(start__lt=end)
    first_day = day_ceil(start) if start else start
    last_day = day_floor(end) if end else None
    if hourly or (first_day and last_day and first_day >= last_day):
        return hours
    days = Q(period=Period.DAY)
    ragged = Q(pk__in=[])
    if first_day:
        days &= Q(start__gte=first_day)
        ragged |= Q(start__lt=first_day)
    if last_day:
        days &= Q(start__lt=last_day)
        ragged |= Q(start__gte=last_day)
    return days | (hours & ragged)


def sketches_read(
    *,
    model: MLModel,
    kind: str,
    name: str | None = "",
    start: datetime | None,
    end: datetime | None,
    version_ids: list[int] | None = None,
    segment: str | None = None,
    hourly: bool = False,
    shared_with: str | None = None,
) -> list[SketchRow]:
    """Sketch rows of one kind (one feature, or every feature when name is None); with
    `shared_with`, those of the hours and segments that version served too."""
    rows = Sketch.objects.filter(model=model, kind=kind)
    if name is not None:
        rows = rows.filter(name=name)
    if version_ids is not None:
        rows = rows.filter(version_id__in=version_ids)
    if segment is not None:
        rows = rows.filter(segment=segment)
    if shared_with:
        rows = rows.annotate(shared=shared_cells(model, shared_with, at="start"))
        cover = shared_cover(model, shared_with, start, end, hourly, version_ids, segment)
    else:
        cover = period_cover(start, end, hourly=hourly)
    fields = ("start", "period", "version_id", "segment", "kind", "name", "n", "data")
    return [SketchRow(*row) for row in rows.filter(cover).values_list(*fields)]


def shared_cover(model: MLModel, other: str, start, end, hourly: bool, version_ids, segment) -> Q:
    """Rows covering the hours and segments in [start, end) where `other` served too (rows
    annotated `shared`): a (version, segment, day) every hour of which is shared by its day
    row, any other by its hour rows. A month's comparison then decodes a few day rows where it
    decoded 1,500 hour rows."""
    hours = period_cover(start, end, hourly=True) & Q(shared=True)
    days = [] if hourly else shared_days(model, other, start, end, version_ids, segment)
    if not days:
        return hours
    whole, in_days = Q(pk__in=[]), Q(pk__in=[])
    for version_id, segment_, day in days:
        cell = Q(version_id=version_id, segment=segment_)
        whole |= cell & Q(start=day)
        in_days |= cell & Q(start__gte=day, start__lt=day + DAY)
    return (hours & ~in_days) | (Q(period=Period.DAY) & whole)


@dataclass(frozen=True)
class SketchStamp:
    """A sketch row without its data: which window it belongs to and a digest of its content,
    so that what was computed from it can be looked up before its bytes are read."""

    pk: int
    start: datetime
    kind: str
    name: str
    digest: str


ROW_STAMP = RawSQL(
    "monitoring_sketch.id::text || ':' || monitoring_sketch.xmin::text", (), CharField()
)


def sketch_stamps(
    *,
    model: MLModel,
    kinds: tuple[str, ...],
    name: str | None,
    start: datetime | None,
    end: datetime | None,
    version_ids: list[int] | None,
    segment: str | None,
    hourly: bool = False,
) -> list[SketchStamp]:
    """The rows `sketches_read` would return (of several kinds; every version's without
    `version_ids`), each with a stamp that changes when its data does. Sketch rows are never
    updated, only deleted and inserted anew, so on PostgreSQL a row's id and inserting
    transaction (`xmin`, which no other database of the cluster repeats) stamp it without
    reading its data; SQLite, whose ids can come again after a rolled-back transaction, hashes
    the data here."""
    rows = Sketch.objects.filter(model=model, kind__in=kinds)
    if version_ids is not None:
        rows = rows.filter(version_id__in=version_ids)
    if name is not None:
        rows = rows.filter(name=name)
    if segment is not None:
        rows = rows.filter(segment=segment)
    rows = rows.filter(period_cover(start, end, hourly=hourly))
    fields = ("pk", "start", "kind", "name")
    if is_postgres():
        stamped = rows.annotate(digest=ROW_STAMP).values_list(*fields, "digest")
        return [SketchStamp(*row) for row in stamped]
    return [
        SketchStamp(*row[:-1], hashlib.md5(bytes(row[-1])).hexdigest())
        for row in rows.values_list(*fields, "data")
    ]


def sketch_data(pks: list[int]) -> dict[int, bytes]:
    """The data of the given sketch rows, by key."""
    rows = Sketch.objects.filter(pk__in=pks).values_list("pk", "data")
    return {pk: bytes(data) for pk, data in rows.iterator(chunk_size=2000)}
