"""Hourly aggregates, recomputed for the hours that new predictions or labels touched.

Day and week windows, and every chart, are sums of these rows; raw rows are read only here,
and only for dirty hours.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncHour
from django.utils.dateparse import parse_datetime

from monitoring.models import HourlyAggregate, HourlyValue, Prediction
from monitoring.sql import db_datetime, json_entries, json_number

HOUR = timedelta(hours=1)


def as_utc(value) -> datetime:
    if isinstance(value, str):
        value = parse_datetime(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def hour_ranges(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous [start, end) ranges covering the given hours."""
    ranges: list[list[datetime]] = []
    for hour in sorted(hours):
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour + HOUR
        else:
            ranges.append([hour, hour + HOUR])
    return [(start, end) for start, end in ranges]


def dirty_hours_take(model_id: int) -> list[datetime]:
    """Remove and return the model's dirty hours (inside the caller's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM monitoring_dirtyhour WHERE model_id = %s RETURNING hour", [model_id]
        )
        return sorted({as_utc(hour) for (hour,) in cursor.fetchall()})


def hourly_counts(model_id: int, start: datetime, end: datetime) -> list[HourlyAggregate]:
    rows = (
        Prediction.objects.filter(model_id=model_id, timestamp__gte=start, timestamp__lt=end)
        .annotate(hour=TruncHour("timestamp"))
        .values("version_id", "segment", "hour")
        .annotate(
            n=Count("id"),
            n_scored=Count("score"),
            score_total=Sum("score"),
            score_sq_total=Sum(F("score") * F("score")),
            n_labelled=Count("label"),
            n_correct=Count("label", filter=Q(label__correct=True)),
            delay_total=Sum("label__delay_s"),
        )
    )
    return [
        HourlyAggregate(
            model_id=model_id,
            version_id=row["version_id"],
            segment=row["segment"],
            hour=row["hour"],
            predictions=row["n"],
            scored=row["n_scored"],
            score_sum=row["score_total"] or 0.0,
            score_sq_sum=row["score_sq_total"] or 0.0,
            labelled=row["n_labelled"],
            correct=row["n_correct"],
            delay_s_sum=row["delay_total"] or 0.0,
        )
        for row in rows
    ]


def hourly_values(model_id: int, start: datetime, end: datetime) -> list[HourlyValue]:
    number = json_number("kv.value")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT p.version_id, p.segment, l.hour, kv.key, COUNT(*), SUM({number}),
                SUM({number} * {number})
            FROM monitoring_label l
            JOIN monitoring_prediction p ON p.id = l.prediction_id,
                {json_entries('l."values"')} kv
            WHERE l.model_id = %s AND l.hour >= %s AND l.hour < %s AND l."values" IS NOT NULL
            GROUP BY p.version_id, p.segment, l.hour, kv.key
            """,
            [model_id, db_datetime(start), db_datetime(end)],
        )
        return [
            HourlyValue(
                model_id=model_id, version_id=version_id, segment=segment, hour=as_utc(hour),
                name=name, count=count, total=total, total_sq=total_sq,
            )
            for version_id, segment, hour, name, count, total, total_sq in cursor.fetchall()
        ]  # fmt: skip


def aggregates_refresh(*, model_id: int) -> int:
    """Recompute the aggregates of every dirty hour of a model; returns how many hours."""
    with transaction.atomic():
        hours = dirty_hours_take(model_id)
        for start, end in hour_ranges(hours):
            window = {"model_id": model_id, "hour__gte": start, "hour__lt": end}
            HourlyAggregate.objects.filter(**window).delete()
            HourlyValue.objects.filter(**window).delete()
            HourlyAggregate.objects.bulk_create(hourly_counts(model_id, start, end), 1000)
            HourlyValue.objects.bulk_create(hourly_values(model_id, start, end), 1000)
    return len(hours)
