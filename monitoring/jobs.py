"""The pipeline of one model: join, aggregate, evaluate alert rules, notify."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from monitoring.alerts.evaluate import rules_evaluate
from monitoring.alerts.notify import notifications_send
from monitoring.pipeline.aggregate import aggregates_refresh
from monitoring.pipeline.join import outcomes_join

log = logging.getLogger(__name__)


@dataclass
class JobsReport:
    model_id: int
    labels_written: int
    hours_refreshed: int
    rules_evaluated: int
    notifications_sent: int


def jobs_run(*, model_id: int, sweep: bool = False, now: datetime | None = None) -> JobsReport:
    joined = outcomes_join(model_id=model_id, sweep=sweep)
    hours = aggregates_refresh(model_id=model_id)
    rules = rules_evaluate(model_id=model_id, now=now)
    sent = notifications_send(model_id=model_id)
    report = JobsReport(model_id, joined.labels_written, hours, rules, sent)
    log.info("jobs for model %s: %s", model_id, report)
    return report
