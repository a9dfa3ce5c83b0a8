"""Alert rule evaluation: judge the latest windows, move the alert through its states.

An alert opens (pending) on the first window outside the rule's bounds, fires once
`for_windows` consecutive judged windows are outside, and resolves on the first judged
window back inside. Windows with fewer than `min_count` observations are not judged.
Each state change creates at most one notification row, so re-running sends nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from monitoring.metrics import WINDOW, Point, metric_series
from monitoring.models import (
    Alert,
    AlertRule,
    AlertState,
    Direction,
    Notification,
    NotificationKind,
    RuleKind,
)
from monitoring.retrain import retrain_on_firing

EXTRA_LOOKBACK_WINDOWS = 14  # how far back to look for judged windows when recent ones are thin


@dataclass
class Verdict:
    point: Point
    direction: str | None  # None: inside the bounds


def breach_direction(rule: AlertRule, value: float) -> str | None:
    if rule.lower is not None and value < rule.lower:
        return Direction.TOO_LOW
    if rule.upper is not None and value > rule.upper:
        return Direction.TOO_HIGH
    return None


def verdicts(rule: AlertRule, now: datetime) -> list[Verdict]:
    """The judged windows, oldest first, up to `for_windows` of the latest."""
    step = WINDOW[rule.granularity]
    points = metric_series(
        model=rule.model,
        metric=rule.metric,
        granularity=rule.granularity,
        start=now - step * (rule.for_windows + EXTRA_LOOKBACK_WINDOWS),
        end=now,
        version=rule.version,
        segment=rule.segment,
    )
    if rule.kind == RuleKind.NO_DATA:
        judged = [p for p in points if p.end <= now]
        return [
            Verdict(p, Direction.NO_DATA if p.n < rule.min_count else None)
            for p in judged[-rule.for_windows :]
        ]
    judged = [p for p in points if p.value is not None and p.n >= rule.min_count]
    return [Verdict(p, breach_direction(rule, p.value)) for p in judged[-rule.for_windows :]]


def rule_evaluate(rule: AlertRule, now: datetime | None = None) -> Alert | None:
    """Judge a rule now; returns its open alert, if any, after the transition."""
    now = now or timezone.now()
    judged = verdicts(rule, now)
    open_alert = rule.alerts.exclude(state=AlertState.RESOLVED).first()
    if not judged:
        return open_alert
    latest = judged[-1]
    if latest.direction is None:
        if open_alert:
            alert_resolve(open_alert, now)
        return None
    firing = len(judged) == rule.for_windows and all(v.direction for v in judged)
    return alert_open_or_update(rule, open_alert, latest, firing, now)


def alert_open_or_update(
    rule: AlertRule, alert: Alert | None, latest: Verdict, firing: bool, now: datetime
) -> Alert | None:
    state = AlertState.FIRING if firing else AlertState.PENDING
    fields = {
        "direction": latest.direction,
        "value": latest.point.value,
        "n": latest.point.n,
        "lower": rule.lower,
        "upper": rule.upper,
        "window_start": latest.point.start,
        "window_end": latest.point.end,
    }
    with transaction.atomic():
        if alert is None:
            try:
                with transaction.atomic():
                    alert = Alert.objects.create(
                        rule=rule, model=rule.model, state=state, started_at=now, **fields
                    )
            except IntegrityError:  # another evaluator opened it first
                return rule.alerts.exclude(state=AlertState.RESOLVED).first()
        else:
            if alert.state == AlertState.FIRING:
                state = AlertState.FIRING  # stays firing until a window is back inside
            Alert.objects.filter(pk=alert.pk).update(state=state, **fields)
            alert.refresh_from_db()
        if state == AlertState.FIRING:
            notification_record(alert, NotificationKind.FIRING)
            retrain_on_firing(alert)  # issue 5: the factory's hook, once per firing alert
    return alert


def alert_resolve(alert: Alert, now: datetime) -> None:
    with transaction.atomic():
        changed = Alert.objects.filter(pk=alert.pk).exclude(state=AlertState.RESOLVED)
        was_firing = alert.state == AlertState.FIRING
        if changed.update(state=AlertState.RESOLVED, resolved_at=now) and was_firing:
            notification_record(alert, NotificationKind.RESOLVED)


def notification_record(alert: Alert, kind: str) -> None:
    """Record that this change must be told; the unique key keeps it to one row."""
    recipients = alert.rule.recipients or alert.model.on_call
    Notification.objects.bulk_create(
        [Notification(alert=alert, kind=kind, channel="email", recipients=recipients)],
        ignore_conflicts=True,
    )


def rules_evaluate(*, model_id: int, now: datetime | None = None) -> int:
    rules = AlertRule.objects.filter(model_id=model_id).select_related("model")
    for rule in rules:
        rule_evaluate(rule, now)
    return len(rules)
