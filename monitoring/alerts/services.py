"""What people do to alerts: acknowledge one, silence a rule for a while."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from monitoring.models import Alert, AlertRule, AlertState


def alert_acknowledge(*, alert: Alert, by: str, now: datetime | None = None) -> bool:
    """Mark an open alert as seen: it stays open, reminders stop. False if it is resolved."""
    open_alert = Alert.objects.filter(pk=alert.pk).exclude(state=AlertState.RESOLVED)
    return bool(open_alert.update(acknowledged_at=now or timezone.now(), acknowledged_by=by))


def rule_silence(*, rule: AlertRule, until: datetime | None, reason: str) -> AlertRule:
    """No messages for this rule until `until` (None lifts the silence); evaluation goes on.

    An alert still firing when the silence ends is told then, so nothing is forgotten.
    """
    AlertRule.objects.filter(pk=rule.pk).update(silenced_until=until, silence_reason=reason)
    rule.refresh_from_db()
    return rule
