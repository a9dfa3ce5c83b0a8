"""What people do to alerts and rules: make or change a rule, acknowledge an alert, silence a
rule for a while."""

from __future__ import annotations

import copy
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from common.http import UnsafeUrl, outbound_url_check
from factory.models import MLModel
from monitoring.alerts.evaluate import acknowledgement_record
from monitoring.models import Alert, AlertRule, AlertState, WebhookEndpoint


def alert_rule_create(*, model: MLModel, **fields: object) -> AlertRule:
    """A new rule of the model; ValidationError (by field) if it breaks a rule's invariants."""
    rule = AlertRule(model=model, **fields)
    rule.full_clean()
    rule.save()
    return rule


def alert_rule_update(*, rule: AlertRule, **fields: object) -> AlertRule:
    """The rule with these fields changed, saved; ValidationError leaves `rule` as it was."""
    changed = copy.copy(rule)
    for name, value in fields.items():
        setattr(changed, name, value)
    changed.full_clean()
    changed.save()
    return changed


def alert_acknowledge(*, alert: Alert, by: str, now: datetime | None = None) -> bool:
    """Mark an open alert as seen: it stays open, reminders stop, and PagerDuty is told to
    acknowledge its incident. False if it is resolved."""
    now = now or timezone.now()
    open_alert = Alert.objects.filter(pk=alert.pk).exclude(state=AlertState.RESOLVED)
    with transaction.atomic():
        if not open_alert.update(acknowledged_at=now, acknowledged_by=by):
            return False
        acknowledgement_record(alert, now)
    return True


def alerts_acknowledge(*, alert_ids: list[int], by: str, now: datetime | None = None) -> int:
    """Acknowledge many open alerts at once (the alerts page's bulk action) in one UPDATE;
    one already acknowledged keeps who saw it first. Returns how many were acknowledged."""
    chosen = Alert.objects.filter(pk__in=alert_ids, acknowledged_at__isnull=True)
    return chosen.exclude(state=AlertState.RESOLVED).update(
        acknowledged_at=now or timezone.now(), acknowledged_by=by
    )


def rule_silence(*, rule: AlertRule, until: datetime | None, reason: str) -> AlertRule:
    """No messages for this rule until `until` (None lifts the silence); evaluation goes on.

    An alert still firing when the silence ends is told then, so nothing is forgotten.
    """
    AlertRule.objects.filter(pk=rule.pk).update(silenced_until=until, silence_reason=reason)
    rule.refresh_from_db()
    return rule


def channel_create(
    *, model: MLModel, kind: str, url: str, routing_key: str = ""
) -> WebhookEndpoint:
    """A new channel of the model (webhook, Slack, PagerDuty); ValidationError by field when
    the URL may not be called, a PagerDuty key is missing, or the channel exists already."""
    channel = WebhookEndpoint(
        model=model, kind=kind, url=url.strip(), routing_key=routing_key.strip()
    )
    channel.full_clean(validate_constraints=False)
    try:
        outbound_url_check(channel.url)
    except UnsafeUrl as error:
        raise ValidationError({"url": str(error)}) from None
    same = WebhookEndpoint.objects.filter(
        model=model, kind=channel.kind, url=channel.url, routing_key=channel.routing_key
    )
    if same.exists():
        raise ValidationError({"url": "This channel is already set up for the model."})
    channel.save()
    return channel
