"""Job failures per model: recorded with their error, cleared when the work succeeds again.

A stage that raises (join, evaluate, notify, or aggregation as a whole) is one row; hours the
aggregation could not write are rows of their own, one per contiguous range and error, so a
poisoned hour fails alone while the model's other hours are aggregated. Failed hours are
retried with backoff (and at once when new data arrives in them, which marks them dirty).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, Min
from django.utils import timezone

from common.time import HOUR
from monitoring.models import DirtyHour, JobFailure, JobHealth, JobStage

ERROR_CHARS = 2000
RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=6)


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:ERROR_CHARS]


def retry_delay(attempts: int) -> timedelta:
    return min(RETRY_FIRST * 2 ** max(attempts - 1, 0), RETRY_MAX)


def stage_failure_record(*, model_id: int, stage: str, error: str, now: datetime) -> JobFailure:
    """Record (or count again) the failure of a whole stage."""
    failure = JobFailure.objects.filter(
        model_id=model_id, stage=stage, first_hour__isnull=True
    ).first()
    if failure is None:
        return JobFailure.objects.create(
            model_id=model_id, stage=stage, error=error, first_seen=now, last_seen=now
        )
    failure.error, failure.last_seen, failure.attempts = error, now, failure.attempts + 1
    failure.save(update_fields=["error", "last_seen", "attempts"])
    return failure


def stage_failure_clear(*, model_id: int, stage: str) -> None:
    JobFailure.objects.filter(model_id=model_id, stage=stage, first_hour__isnull=True).delete()


def hours_between(first: datetime, last: datetime) -> list[datetime]:
    """The hours first..last, both included (ranges of failed hours lie inside the accepted
    event-time window, so this never steps past year 9999)."""
    hours = [first]
    while hours[-1] < last:
        hours.append(hours[-1] + HOUR)
    return hours


def failed_hours_requeue(*, model_id: int, now: datetime) -> int:
    """Mark dirty again the failed hours whose retry is due; returns how many hours."""
    due = JobFailure.objects.filter(model_id=model_id, stage=JobStage.AGGREGATE, retry_at__lte=now)
    dirty = [
        DirtyHour(model_id=model_id, hour=hour)
        for first, last in due.values_list("first_hour", "last_hour")
        for hour in hours_between(first, last)
    ]
    DirtyHour.objects.bulk_create(dirty, 1000, ignore_conflicts=True)
    return len(dirty)


def failed_ranges(failed: dict[datetime, str]) -> list[tuple[datetime, datetime, str]]:
    """Contiguous hours with the same error, as (first hour, last hour, error)."""
    ranges: list[list] = []
    for hour in sorted(failed):
        if ranges and ranges[-1][1] + HOUR == hour and ranges[-1][2] == failed[hour]:
            ranges[-1][1] = hour
        else:
            ranges.append([hour, hour, failed[hour]])
    return [(first, last, error) for first, last, error in ranges]


def hour_failures_replace(
    *, model_id: int, processed: set[datetime], failed: dict[datetime, str], now: datetime
) -> None:
    """The aggregation went over `processed` hours and `failed` of them failed: rows about
    those hours are replaced by the new failures, which keep the first_seen and count the
    attempts of the rows they replace."""
    if not processed:
        return
    rows = JobFailure.objects.filter(model_id=model_id, stage=JobStage.AGGREGATE)
    touched, failed = [], dict(failed)
    for pk, first, last, error in rows.values_list("pk", "first_hour", "last_hour", "error"):
        hours = hours_between(first, last)
        if processed.isdisjoint(hours):
            continue
        touched.append(pk)
        # Hours of the row that were not gone over this time are still failing.
        failed |= {hour: error for hour in hours if hour not in processed and hour not in failed}
    before = JobFailure.objects.filter(pk__in=touched).aggregate(
        since=Min("first_seen"), attempts=Max("attempts")
    )
    JobFailure.objects.filter(pk__in=touched).delete()
    attempts = (before["attempts"] or 0) + 1
    JobFailure.objects.bulk_create(
        JobFailure(
            model_id=model_id,
            stage=JobStage.AGGREGATE,
            first_hour=first,
            last_hour=last,
            error=error,
            first_seen=before["since"] or now,
            last_seen=now,
            attempts=attempts,
            retry_at=now + retry_delay(attempts),
        )
        for first, last, error in failed_ranges(failed)
    )


def job_health_update(*, model_id: int, now: datetime | None = None) -> JobHealth:
    """After a run: one more failed run while any failure is open, else back to zero."""
    now = now or timezone.now()
    health, _ = JobHealth.objects.get_or_create(model_id=model_id)
    since = JobFailure.objects.filter(model_id=model_id).aggregate(t=Min("first_seen"))["t"]
    health.failed_runs = health.failed_runs + 1 if since else 0
    health.failing_since = since
    health.last_run_at = now
    health.save()
    return health


def job_failures_open(*, model_id: int) -> list[JobFailure]:
    return list(JobFailure.objects.filter(model_id=model_id))


@dataclass
class MonitoringHealth:
    """What the model page and API say about a model's jobs."""

    failing_since: datetime | None
    failed_runs: int
    last_run_at: datetime | None
    failures: list[JobFailure]


def monitoring_health_get(*, model_id: int) -> MonitoringHealth:
    health = JobHealth.objects.filter(model_id=model_id).first() or JobHealth(model_id=model_id)
    failures = job_failures_open(model_id=model_id)
    since = min((f.first_seen for f in failures), default=None)
    return MonitoringHealth(since, health.failed_runs, health.last_run_at, failures)
