"""Hourly aggregates, recomputed for the hours that new predictions or labels touched.

Day and week windows, and every chart, are sums of these rows; raw rows are read only here,
and only for dirty hours.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, F, FloatField, Q, Sum, Value, When
from django.db.models.functions import Abs, Coalesce, Greatest, Least, Ln, TruncHour
from django.utils import timezone

from common.retention import hours_unsealed
from common.sql import db_datetime, hashing, json_entries, json_number
from common.time import HOUR, as_utc, hour_ranges
from factory.models import MLModel
from monitoring.ingest.partitions import stale_statistics_refresh
from monitoring.ingest.records import positive_label
from monitoring.ingest.validate import timestamp_bounds
from monitoring.models import (
    HourlyAggregate,
    HourlyValue,
    JobFailure,
    JobStage,
    Prediction,
)
from monitoring.pipeline.chunk_rows import own_label
from monitoring.pipeline.failures import (
    failed_hours_requeue,
    hour_failures_replace,
    hours_between,
    stage_failure_clear,
    stage_failure_record,
)
from monitoring.pipeline.isolate import isolated
from monitoring.pipeline.sketches import sketches_refresh

EPS = float(np.finfo(np.float64).eps)  # log loss clips scores as scikit-learn does
MAX_PASSES = 3


def dirty_hours_take(model_id: int) -> list[datetime]:
    """Remove and return the model's dirty hours (inside the caller's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM monitoring_dirtyhour WHERE model_id = %s RETURNING hour", [model_id]
        )
        return sorted({as_utc(hour) for (hour,) in cursor.fetchall()})


def clipped(expression, low: float = EPS, high: float = 1 - EPS):
    return Greatest(Least(expression, Value(high)), Value(low))


def scalar_sums(positive: str) -> dict:
    """The per-hour sums every scalar metric needs, as SQL aggregates over predictions."""
    judged = Q(own__outcome__isnull=False)
    actual_pos, predicted_pos = Q(own__outcome=positive), Q(prediction=positive)
    probabilistic = judged & Q(score__isnull=False)
    log_loss = -Case(
        When(actual_pos, then=Ln(clipped(F("score")))),
        default=Ln(clipped(Value(1.0) - F("score"))),
        output_field=FloatField(),
    )
    residual = F("score") - Case(
        When(actual_pos, then=Value(1.0)), default=Value(0.0), output_field=FloatField()
    )
    regressed = Q(prediction_num__isnull=False, own__outcome_num__isnull=False)
    error = F("prediction_num") - F("own__outcome_num")
    ape = Abs(error) / Abs(F("own__outcome_num"))
    with_ape = regressed & ~Q(own__outcome_num=0)
    return dict(
        n_judged=Count("id", filter=judged),
        n_tp=Count("id", filter=judged & actual_pos & predicted_pos),
        n_fp=Count("id", filter=judged & ~actual_pos & predicted_pos),
        n_fn=Count("id", filter=judged & actual_pos & ~predicted_pos),
        n_predicted_positive=Count("id", filter=predicted_pos),
        n_predicted_num=Count("prediction_num"),
        prediction_total=Sum("prediction_num"),
        prediction_sq_total=Sum(F("prediction_num") * F("prediction_num")),
        n_probabilistic=Count("id", filter=probabilistic),
        log_loss_total=Sum(log_loss, filter=probabilistic),
        log_loss_sq_total=Sum(log_loss * log_loss, filter=probabilistic),
        brier_total=Sum(residual * residual, filter=probabilistic),
        brier_sq_total=Sum(residual * residual * residual * residual, filter=probabilistic),
        n_regressed=Count("id", filter=regressed),
        error_total=Sum(error, filter=regressed),
        error_sq_total=Sum(error * error, filter=regressed),
        abs_error_total=Sum(Abs(error), filter=regressed),
        error_fourth_total=Sum(error * error * error * error, filter=regressed),
        n_ape=Count("id", filter=with_ape),
        ape_total=Sum(ape, filter=with_ape),
        ape_sq_total=Sum(ape * ape, filter=with_ape),
    )


SCALAR_FIELDS = {
    "judged": "n_judged",
    "tp": "n_tp",
    "fp": "n_fp",
    "fn": "n_fn",
    "predicted_positive": "n_predicted_positive",
    "predicted_num": "n_predicted_num",
    "prediction_sum": "prediction_total",
    "prediction_sq_sum": "prediction_sq_total",
    "probabilistic": "n_probabilistic",
    "log_loss_sum": "log_loss_total",
    "log_loss_sq_sum": "log_loss_sq_total",
    "brier_sum": "brier_total",
    "brier_sq_sum": "brier_sq_total",
    "regressed": "n_regressed",
    "error_sum": "error_total",
    "error_sq_sum": "error_sq_total",
    "abs_error_sum": "abs_error_total",
    "error_fourth_sum": "error_fourth_total",
    "ape_n": "n_ape",
    "ape_sum": "ape_total",
    "ape_sq_sum": "ape_sq_total",
}


def hourly_counts(model: MLModel, start: datetime, end: datetime):
    """The hours' counts and sums per version and segment, as a query whose columns are
    `COUNT_COLUMNS`, in that order (an empty sum is 0)."""
    scalars = scalar_sums(positive_label(model))
    sums = {
        "predictions": Count("id"),
        "scored": Count("score"),
        "score_sum": Sum("score"),
        "score_sq_sum": Sum(F("score") * F("score")),
        "labelled": Count("own"),
        "correct": Count("own", filter=Q(own__correct=True)),
        "delay_s_sum": Sum("own__delay_s"),
        **{field: scalars[key] for field, key in SCALAR_FIELDS.items()},
    }
    columns = {
        f"total_{field}": Coalesce(total, Value(0.0)) if isinstance(total, Sum) else total
        for field, total in sums.items()
    }
    return (
        Prediction.objects.filter(model_id=model.pk, timestamp__gte=start, timestamp__lt=end)
        .annotate(hour=TruncHour("timestamp"), own=own_label())
        .values("version_id", "segment", "hour")
        .annotate(**columns)
        .values_list("version_id", "segment", "hour", *columns)
    )


COUNT_COLUMNS = [
    "version_id",
    "segment",
    "hour",
    "predictions",
    "scored",
    "score_sum",
    "score_sq_sum",
    "labelled",
    "correct",
    "delay_s_sum",
    *SCALAR_FIELDS,
]


def counts_insert(model: MLModel, start: datetime, end: datetime) -> None:
    """Insert the hours' counts straight from the query, in the database (no row passes
    through Python), grouped by hashing on PostgreSQL (a third faster than its sort on disk)."""
    query, params = hourly_counts(model, start, end).query.sql_with_params()
    columns = ", ".join(COUNT_COLUMNS)
    with connection.cursor() as cursor, hashing(cursor):
        cursor.execute(
            f"INSERT INTO monitoring_hourlyaggregate (model_id, {columns}) "
            f"SELECT %s, counts.* FROM ({query}) AS counts",
            [model.pk, *params],
        )


def hourly_values(model_id: int, start: datetime, end: datetime) -> list[HourlyValue]:
    number = json_number("kv.value")
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT p.version_id, p.segment, l.hour, kv.key, COUNT(*), SUM({number}),
                SUM({number} * {number})
            FROM monitoring_label l
            JOIN monitoring_prediction p ON p.id = l.prediction_id AND p.model_id = l.model_id,
                {json_entries('l."values"')} kv
            WHERE l.model_id = %s AND l.hour >= %s AND l.hour < %s AND l."values" IS NOT NULL
            GROUP BY p.version_id, p.segment, l.hour, kv.key
            """,
            [model_id, db_datetime(start), db_datetime(end)],
        )
        return [
            HourlyValue(
                model_id=model_id,
                version_id=version_id,
                segment=segment,
                hour=as_utc(hour),
                name=name,
                count=count,
                total=total,
                total_sq=total_sq,
            )
            for version_id, segment, hour, name, count, total, total_sq in cursor.fetchall()
        ]


def counts_write(model: MLModel, start: datetime, end: datetime) -> None:
    window = {"model_id": model.pk, "hour__gte": start, "hour__lt": end}
    HourlyAggregate.objects.filter(**window).delete()
    HourlyValue.objects.filter(**window).delete()
    counts_insert(model, start, end)
    HourlyValue.objects.bulk_create(hourly_values(model.pk, start, end), 1000)


def counts_refresh(model: MLModel, hours: list[datetime]) -> dict[datetime, str]:
    """Rewrite the hours' counts a contiguous range at a time, each in a savepoint; a range
    that fails is tried again an hour at a time. Returns the failed hours and their errors."""
    failed: dict[datetime, str] = {}
    for start, end in hour_ranges(hours):
        if isolated(lambda s=start, e=end: counts_write(model, s, e)) is None:
            continue
        for hour in hours_between(start, end - HOUR):
            error = isolated(lambda h=hour: counts_write(model, h, h + HOUR))
            if error is not None:
                failed[hour] = error
    return failed


def hours_in_window(model_id: int, hours: list[datetime], now: datetime) -> list[datetime]:
    """The hours inside the accepted event-time window. Predictions outside it (stored past
    validation) are not aggregated: their hours cannot even be stepped over near year 9999.
    They are recorded as a failure of their own, cleared once no such prediction is left."""
    floor, ceiling = timestamp_bounds()
    low = floor.replace(minute=0, second=0, microsecond=0)
    inside = [hour for hour in hours if low <= hour <= ceiling]
    open_failure = JobFailure.objects.filter(model_id=model_id, stage=JobStage.TIMESTAMPS)
    if len(inside) == len(hours) and not open_failure.exists():
        return inside
    outside = Prediction.objects.filter(model_id=model_id).filter(
        Q(timestamp__lt=floor) | Q(timestamp__gt=ceiling)
    )
    count = outside.count()
    if count:
        error = (
            f"{count} predictions have event times outside {floor.isoformat()} .. now plus "
            f"{settings.CANARY_FUTURE_SKEW_S} s and are not aggregated; delete them"
        )
        stage_failure_record(model_id=model_id, stage=JobStage.TIMESTAMPS, error=error, now=now)
    else:
        stage_failure_clear(model_id=model_id, stage=JobStage.TIMESTAMPS)
    return inside


def pass_run(model: MLModel, hours: list[datetime], path: str | None) -> dict[datetime, str]:
    """One pass over the hours (inside the caller's transaction); returns the failed hours."""
    failed = counts_refresh(model, hours)
    good = [hour for hour in hours if hour not in failed]
    return failed | sketches_refresh(model=model, hours=good, path=path)


def aggregates_refresh(
    *, model_id: int, path: str | None = None, now: datetime | None = None
) -> int:
    """Recompute the aggregates of every dirty hour of a model; returns how many hours.

    A pass may mark more hours dirty (a feature whose values were all missing got values, and
    its bins were frozen); they are done in a second pass, so when this returns every stored
    histogram is on the model's bins.
    An hour whose aggregates cannot be written is recorded as a failure and left out; the
    model's other hours are written.
    """
    now = now or timezone.now()
    model = MLModel.objects.get(pk=model_id)
    failed_hours_requeue(model_id=model_id, now=now)
    stale_statistics_refresh()  # labels just written by the join, rows just copied
    total, processed, failed = 0, set(), {}
    for _ in range(MAX_PASSES):
        with transaction.atomic():
            # Sealed hours (before the raw horizon) keep their aggregates for good.
            hours = hours_unsealed(dirty_hours_take(model_id), now)
            hours = hours_in_window(model_id, hours, now)
            failed.update(pass_run(model, hours, path))
        processed.update(hours)
        total += len(hours)
        if not hours:
            break
    failed = {hour: error for hour, error in failed.items() if hour in processed}
    hour_failures_replace(model_id=model_id, processed=processed, failed=failed, now=now)
    stale_statistics_refresh()  # the aggregates just written, before pages read them
    return total - len(failed)
