"""Delivery of alert notifications, claimed with a conditional update so each goes once."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from monitoring.models import Notification

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
CLAIM_TTL = timedelta(minutes=5)


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2**attempts, 3600))


def notification_claim(notification_id: int) -> bool:
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    claimed = Notification.objects.filter(
        free, pk=notification_id, sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS
    )
    return claimed.update(claimed_until=now + CLAIM_TTL, attempts=F("attempts") + 1) == 1


def alert_message(notification: Notification) -> tuple[str, str, str]:
    """Subject, plain text and HTML of an alert e-mail."""
    alert = notification.alert
    rule = alert.rule
    chart_url = settings.CANARY_BASE_URL + reverse(
        "dashboard:model", kwargs={"name": alert.model.name}
    )
    context = {
        "alert": alert,
        "rule": rule,
        "model": alert.model,
        "kind": notification.kind,
        "direction": alert.direction.replace("_", " "),
        "chart_url": f"{chart_url}?metric={rule.metric}#metric-{rule.metric}",
    }
    subject = render_to_string("emails/alert_subject.txt", context).strip()
    text = render_to_string("emails/alert.txt", context)
    html = render_to_string("emails/alert.html", context)
    return " ".join(subject.split()), text, html


def notification_send(notification_id: int) -> bool:
    """Deliver one notification if this caller claims it; record the result either way."""
    if not notification_claim(notification_id):
        return False
    notification = Notification.objects.select_related("alert__rule", "alert__model").get(
        pk=notification_id
    )
    if not notification.recipients:
        Notification.objects.filter(pk=notification_id).update(
            error="no recipients: set the model's on-call list or the rule's recipients",
            attempts=MAX_ATTEMPTS,
        )
        return False
    subject, text, html = alert_message(notification)
    message = EmailMultiAlternatives(subject, text, to=notification.recipients)
    message.attach_alternative(html, "text/html")
    try:
        message.send()
    except OSError as error:  # SMTP errors are OSErrors; the claim expires and it is retried
        log.warning("alert e-mail %s failed: %s", notification_id, error)
        Notification.objects.filter(pk=notification_id).update(
            error=f"{type(error).__name__}: {error}",
            claimed_until=timezone.now() + retry_delay(notification.attempts),
        )
        return False
    Notification.objects.filter(pk=notification_id).update(
        sent_at=timezone.now(), subject=subject, error=""
    )
    return True


def notifications_send(*, model_id: int | None = None) -> int:
    """Send every notification still due; returns how many went out."""
    due = Notification.objects.filter(sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
    if model_id is not None:
        due = due.filter(alert__model_id=model_id)
    return sum(notification_send(pk) for pk in due.values_list("pk", flat=True))
