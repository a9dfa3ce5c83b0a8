"""Retention: raw rows removed a month at a time, quarantine and evaluation history trimmed.

Raw predictions, labels and outcomes live CANARY_RAW_RETENTION_DAYS: once a whole calendar
month lies before the raw horizon, its partitions are dropped (PostgreSQL) or its rows deleted
(SQLite). Aggregates are never touched (but explain's hour entries, which only an hour
aggregated again reads): their hours were sealed when they passed the horizon,
so every chart, alert and drift answer over old windows reads the same afterwards. Quarantined
records and alert evaluations have horizons of their own. Each run is recorded as a
RetentionRun, which tells the drill-down which rows are gone. Safe to run twice, or at once.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from common.retention import month_after, month_start, raw_horizon, raw_removal_boundary
from common.sql import db_datetime, is_postgres
from monitoring.ingest.partitions import (
    RAW_TABLES,
    months_between,
    partition_months,
    partitions_ensure,
)
from monitoring.models import (
    AlertEvaluation,
    JobFailure,
    JobStage,
    Prediction,
    QuarantinedRecord,
    RetentionRun,
    SliceHour,
)

log = logging.getLogger(__name__)
MONTHS_AHEAD = 2  # partitions made ahead of need, beside the current month's
DROP_LOCK_TIMEOUT = "10s"  # a DROP waits this long for running queries, then waits a run


def retention_run(*, now: datetime | None = None) -> RetentionRun:
    """Remove what is past its horizon; make the coming months' partitions; record the run."""
    now = now or timezone.now()
    started = time.perf_counter()
    boundary = raw_removal_boundary(now)
    months = raw_months_remove(boundary) if is_postgres() else raw_rows_delete(boundary)
    slice_hours_trim(boundary)
    next_month = month_after(month_start(now))
    with transaction.atomic():
        partitions_ensure(months_between(now, month_after(next_month)))
    quarantine_removed = quarantine_trim(now)
    evaluations_removed = evaluations_trim(now)
    sealed_failures_close(now)
    return RetentionRun.objects.create(
        ran_at=now,
        raw_removed_before=boundary,
        months_removed=[f"{month:%Y-%m}" for month in months],
        quarantine_removed=quarantine_removed,
        evaluations_removed=evaluations_removed,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


def raw_months_remove(boundary: datetime) -> list[datetime]:
    """Drop every partition of a month before the boundary; the months dropped.

    A month's prediction and label partitions go in one transaction, with the month's
    prediction keys: the one row-by-row delete, of a narrow table (`PredictionKey`). A DROP
    needs a moment's exclusive lock on its parent table; one that cannot get it in
    DROP_LOCK_TIMEOUT waits for the next run (logged), so a long report never stalls
    ingestion behind it.
    """
    by_month: dict[datetime, list[str]] = {}
    for table in RAW_TABLES:
        for month, name in partition_months(table).items():
            if month < boundary and month_after(month) <= boundary:
                by_month.setdefault(month, []).append(name)
    dropped = []
    for month, names in sorted(by_month.items()):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{DROP_LOCK_TIMEOUT}'")
                for name in names:
                    cursor.execute(f"DROP TABLE {name}")
                cursor.execute(
                    'DELETE FROM monitoring_predictionkey WHERE "timestamp" >= %s '
                    'AND "timestamp" < %s',
                    [month, month_after(month)],
                )
        except OperationalError as error:
            log.warning("raw rows of %s not removed yet (%s); next run tries again", month, error)
            continue
        dropped.append(month)
    return dropped


def raw_rows_delete(boundary: datetime) -> list[datetime]:
    """SQLite (no partitions): delete the raw rows before the boundary; the months they held."""
    old = Prediction.objects.filter(timestamp__lt=boundary)
    months = list(old.datetimes("timestamp", "month"))
    with transaction.atomic(), connection.cursor() as cursor:
        for table, key in RAW_TABLES.items():
            cursor.execute(f'DELETE FROM {table} WHERE "{key}" < %s', [db_datetime(boundary)])
    return months


def slice_hours_trim(boundary: datetime) -> None:
    """Explain's hour entries before the boundary: only an hour aggregated again reads them,
    and an hour without raw rows never is (its day's sums stay)."""
    SliceHour.objects.filter(hour__lt=boundary).delete()


def quarantine_trim(now: datetime) -> int:
    cutoff = now - timedelta(days=settings.CANARY_QUARANTINE_RETENTION_DAYS)
    return QuarantinedRecord.objects.filter(created_at__lt=cutoff).delete()[0]


def evaluations_trim(now: datetime) -> int:
    cutoff = now - timedelta(days=settings.CANARY_EVALUATION_RETENTION_DAYS)
    return AlertEvaluation.objects.filter(evaluated_at__lt=cutoff).delete()[0]


def sealed_failures_close(now: datetime) -> None:
    """Hours that failed to aggregate and are sealed now are never retried: their failures
    are closed (logged), or they would keep the model's jobs reported as failing for good."""
    sealed = JobFailure.objects.filter(stage=JobStage.AGGREGATE, last_hour__lt=raw_horizon(now))
    for failure in sealed:
        log.warning(
            "model %s: hours %s..%s were sealed without aggregates (%s)",
            failure.model_id,
            failure.first_hour,
            failure.last_hour,
            failure.error,
        )
    sealed.delete()
