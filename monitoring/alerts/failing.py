"""The "monitoring is failing" e-mail: once when a model's jobs have failed
CANARY_JOB_FAILURES_ALERT runs in a row, and once more when they succeed again.

Not an alert rule: nothing is measured, the jobs that would measure are failing. A send that
fails is tried again after the next run (the health row is only marked once it went out).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from factory.models import MLModel
from monitoring.models import JobFailure, JobHealth

log = logging.getLogger(__name__)


def failing_message(model: MLModel, health: JobHealth, *, resolved: bool) -> EmailMessage:
    state = "resolved" if resolved else "failing"
    context = {
        "model": model,
        "health": health,
        "resolved": resolved,
        "since": health.failing_since,
        "failures": JobFailure.objects.filter(model=model),
        "link": settings.CANARY_BASE_URL + reverse("dashboard:model", kwargs={"name": model.name}),
    }
    subject = f"[Canary] {state.upper()}: monitoring of {model.name} is {state}"
    if resolved:
        subject = f"[Canary] RESOLVED: monitoring of {model.name} is back"
    body = render_to_string("emails/monitoring_failing.txt", context)
    return EmailMessage(subject, body, to=list(model.on_call))


def monitoring_failing_notify(*, health: JobHealth) -> bool:
    """Send the failing (or resolved) e-mail if it is due; True if one went out."""
    failing = health.failed_runs >= settings.CANARY_JOB_FAILURES_ALERT
    if failing == (health.alerted_at is not None):
        return False
    if not failing and health.failed_runs:
        return False  # resolved only once a run ends with no failure open
    model = MLModel.objects.get(pk=health.model_id)
    if not model.on_call:
        log.warning("monitoring of %s is failing and it has no on-call list", model.name)
        return False
    try:
        failing_message(model, health, resolved=not failing).send()
    except OSError:  # the SMTP server may be back after the next run
        log.warning("monitoring-failing e-mail for %s not sent", model.name, exc_info=True)
        return False
    health.alerted_at = timezone.now() if failing else None
    health.save(update_fields=["alerted_at"])
    return True
