"""Aggregating a model's history in parallel: day ranges that workers take one each.

The regular job aggregates the dirty hours of a model in one process. A backfill (a new
installation's history, or new kinds of aggregate over stored rows) splits the model's days
into ranges and aggregates each range on its own, so every worker has one: ranges hold whole
days, so no two of them write the same hour or day rows. The model's bins are frozen first,
once, so that ranges aggregated at the same time never freeze them twice.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from common.sql import db_datetime, hour_of
from common.time import DAY, as_utc, day_floor
from factory.models import MLModel
from monitoring.models import Prediction
from monitoring.pipeline.aggregate import hours_in_window, pass_run
from monitoring.pipeline.failures import hour_failures_replace
from monitoring.pipeline.sketches import hours_bins

DAYS_PER_RANGE = 7


def history_ranges(model_id: int, days: int = DAYS_PER_RANGE) -> list[tuple[datetime, datetime]]:
    """The model's stored days, first to last, in [start, end) ranges of ``days`` days."""
    span = Prediction.objects.filter(model_id=model_id).aggregate(
        first=Min("timestamp"), last=Max("timestamp")
    )
    if span["first"] is None:
        return []
    start, last = day_floor(as_utc(span["first"])), as_utc(span["last"])
    ranges = []
    while start <= last:
        ranges.append((start, start + days * DAY))
        start += days * DAY
    return ranges


def range_hours(model_id: int, start: datetime, end: datetime) -> list[datetime]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT DISTINCT {hour_of("timestamp")} FROM monitoring_prediction
            WHERE model_id = %s AND timestamp >= %s AND timestamp < %s""",
            [model_id, db_datetime(start), db_datetime(end)],
        )
        return sorted(as_utc(hour) for (hour,) in cursor.fetchall())


def bins_prepare(model_id: int) -> None:
    """Freeze the model's bins of every feature before the ranges run."""
    ranges = history_ranges(model_id)
    if ranges:
        model = MLModel.objects.get(pk=model_id)
        with transaction.atomic():
            hours_bins(model, range_hours(model_id, ranges[0][0], ranges[-1][1]))


def range_aggregate(
    *, model_id: int, start: datetime, end: datetime, path: str | None = None
) -> int:
    """Aggregate every hour with predictions in [start, end), whether dirty or not; returns
    how many hours were written. Failed hours are recorded as the job records them."""
    now = timezone.now()
    model = MLModel.objects.get(pk=model_id)
    hours = hours_in_window(model_id, range_hours(model_id, start, end), now)
    with transaction.atomic():
        failed = pass_run(model, hours, path)
    hour_failures_replace(model_id=model_id, processed=set(hours), failed=failed, now=now)
    return len(hours) - len(failed)
