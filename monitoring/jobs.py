"""The pipeline of one model: join, aggregate, freeze calibrations for estimates, evaluate
alert rules, notify.

Each stage runs in its own transaction (a savepoint inside a caller's): a stage that fails is
recorded with its error and the next stages still run on what is there, so evaluation and
notification go on over the hours that did aggregate. After the run the model's health counts
the runs in a row that ended with a failure open, and the on-call list hears about it once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from monitoring.alerts.evaluate import rules_evaluate
from monitoring.alerts.failing import monitoring_failing_notify
from monitoring.alerts.notify import notifications_send
from monitoring.metrics.estimates import calibrations_freeze
from monitoring.metrics.loss_estimates import error_models_freeze
from monitoring.models import JobStage
from monitoring.pipeline.aggregate import aggregates_refresh
from monitoring.pipeline.failures import (
    error_text,
    job_failures_open,
    job_health_update,
    stage_failure_clear,
    stage_failure_record,
)
from monitoring.pipeline.join import outcomes_join

log = logging.getLogger(__name__)


@dataclass
class JobsReport:
    model_id: int
    labels_written: int
    hours_refreshed: int
    rules_evaluated: int
    messages_sent: int  # one per model, channel and target, however many changes
    failures: list[str] = field(default_factory=list)  # open failures after the run

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def __str__(self) -> str:
        """The run in words, as the log shows it."""
        text = (
            f"{self.labels_written} labels joined, {self.hours_refreshed} hours aggregated, "
            f"{self.rules_evaluated} rules evaluated, {self.messages_sent} messages sent"
        )
        return text + (f"; failing: {'; '.join(self.failures)}" if self.failures else "")


def stage_transaction() -> AbstractContextManager:
    """A savepoint when the caller holds a transaction, so a failed stage leaves it usable;
    else nothing: each stage commits its own work in its own transactions, as it goes."""
    return transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext()


def stage_run(*, model_id: int, stage: str, work: Callable[[], int], now: datetime) -> int:
    """Run one stage; on failure record it and return 0 so the next stages still run."""
    try:
        with stage_transaction():
            result = work()
    except Exception as error:  # any failure of one stage must not stop the others
        log.exception("%s of model %s failed", stage, model_id)
        stage_failure_record(model_id=model_id, stage=stage, error=error_text(error), now=now)
        return 0
    stage_failure_clear(model_id=model_id, stage=stage)
    return result


def jobs_run(*, model_id: int, sweep: bool = False, now: datetime | None = None) -> JobsReport:
    moment = now or timezone.now()

    def run(stage: str, work: Callable[[], int]) -> int:
        return stage_run(model_id=model_id, stage=stage, work=work, now=moment)

    joined = run(
        JobStage.JOIN, lambda: outcomes_join(model_id=model_id, sweep=sweep).labels_written
    )
    hours = run(JobStage.AGGREGATE, lambda: aggregates_refresh(model_id=model_id, now=moment))
    run(JobStage.ESTIMATE, lambda: calibrations_freeze(model_id=model_id, now=moment))
    if run(JobStage.ESTIMATE, lambda: error_models_freeze(model_id=model_id, now=moment)):
        # A new error model is applied to its version's hours by aggregating them again.
        hours += run(JobStage.AGGREGATE, lambda: aggregates_refresh(model_id=model_id, now=moment))
    rules = run(JobStage.EVALUATE, lambda: rules_evaluate(model_id=model_id, now=now))
    sent = run(JobStage.NOTIFY, lambda: notifications_send(model_id=model_id))
    health = job_health_update(model_id=model_id, now=moment)
    monitoring_failing_notify(health=health)
    failures = [f"{f.stage}: {f.error}" for f in job_failures_open(model_id=model_id)]
    report = JobsReport(model_id, joined, hours, rules, sent, failures)
    log.info("jobs for model %s: %s", model_id, report)
    return report
