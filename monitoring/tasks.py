from __future__ import annotations

import logging
from datetime import datetime

from celery import shared_task
from django.db import InterfaceError, OperationalError

from factory.models import MLModel

log = logging.getLogger(__name__)

# Transient failures only: the database or the network going away. Every job is idempotent.
TRANSIENT_ERRORS = (ConnectionError, TimeoutError, OperationalError, InterfaceError)


@shared_task(
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def jobs_run_model(model_id: int, sweep: bool = False) -> None:
    # Imported here so that the services enqueueing this task can import this module at their
    # top without importing, through it, every layer the jobs chain.
    from monitoring.jobs import jobs_run

    jobs_run(model_id=model_id, sweep=sweep)


@shared_task
def jobs_run_all(sweep: bool = False) -> None:
    """Every model's jobs, each its own task: one model's failure never stops another's (in
    the embedded mode the tasks run in-process, and a failure there is logged, not raised)."""
    for model_id in MLModel.objects.values_list("pk", flat=True):
        try:
            jobs_run_model.delay(model_id, sweep)
        except Exception:
            log.exception("jobs of model %s failed", model_id)


@shared_task(
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def aggregates_range(model_id: int, start: str, end: str) -> int:
    """Aggregate one range of a model's days (a backfill's share of one worker)."""
    from monitoring.pipeline.backfill import range_aggregate

    return range_aggregate(
        model_id=model_id, start=datetime.fromisoformat(start), end=datetime.fromisoformat(end)
    )


@shared_task
def aggregates_backfill(model_id: int, days: int = 7) -> int:
    """Aggregate a model's whole history, fanned out as a task per range of ``days`` days so
    that every worker takes a share; returns how many tasks were enqueued."""
    from monitoring.pipeline.backfill import bins_prepare, history_ranges

    bins_prepare(model_id)
    ranges = history_ranges(model_id, days)
    for start, end in ranges:
        aggregates_range.delay(model_id, start.isoformat(), end.isoformat())
    return len(ranges)


@shared_task(
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=60,
    retry_backoff_max=3600,
    max_retries=5,
)
def retention_run() -> None:
    """Remove what is past its horizon (monitoring/pipeline/retention.py); beat runs it daily."""
    from monitoring.pipeline.retention import retention_run as run

    run()
