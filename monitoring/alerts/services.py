"""What people do to alerts and rules: make or change a rule, acknowledge an alert, silence a
rule for a while."""

from __future__ import annotations

import copy
from datetime import datetime

from django.utils import timezone

from factory.models import MLModel
from monitoring.models import Alert, AlertRule, AlertState


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
    """Mark an open alert as seen: it stays open, reminders stop. False if it is resolved."""
    open_alert = Alert.objects.filter(pk=alert.pk).exclude(state=AlertState.RESOLVED)
    return bool(open_alert.update(acknowledged_at=now or timezone.now(), acknowledged_by=by))


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
