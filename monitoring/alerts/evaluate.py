"""Alert rule evaluation: judge the latest windows, move the alert through its states.

Lifecycle of one rule's alert:
- it opens (pending) on the first judged window outside the bounds, and fires once
  `for_windows` consecutive judged windows are outside and the rule's cooldown since its
  previous alert resolved has passed;
- hysteresis: a firing alert resolves only after `resolve_windows` consecutive judged
  windows back inside by a margin (static: one standard error of the window; band and
  relative: the inner half of the band), so a metric hovering at the line fires once and
  stays firing instead of flapping; a pending alert that never fired closes on the first
  window inside;
- windows are re-read from the aggregates on every run, so late outcomes re-judge them;
- a replay (a backfill evaluating past moments) moves alerts as they would have moved but
  records no message: nobody was waiting for its reminders, and what still fires is told
  by the next live run.
Every run records one AlertEvaluation per rule (verdict, value, bounds, n, state, duration,
error). A metric that cannot be computed is an `error` evaluation, never an alert.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from monitoring.alerts.defaults import value_rules_ensure
from monitoring.alerts.judge import Judgement, rule_judgements
from monitoring.alerts.retrain import retrain_on_firing
from monitoring.metrics.windows import MetricError
from monitoring.models import (
    ACKNOWLEDGING_CHANNELS,
    Alert,
    AlertEvaluation,
    AlertRule,
    AlertState,
    Direction,
    Notification,
    NotificationKind,
    RuleKind,
    Verdict,
    WebhookEndpoint,
)

log = logging.getLogger(__name__)
EVALUATION_RETENTION = timedelta(days=30)


def open_alert_of(rule: AlertRule) -> Alert | None:
    return rule.alerts.exclude(state=AlertState.RESOLVED).first()


def rule_evaluate(
    rule: AlertRule, now: datetime | None = None, run_id=None, *, replay: bool = False
) -> AlertEvaluation:
    """Judge a rule now, apply the transition; returns the (unsaved) evaluation row."""
    now = now or timezone.now()
    began = time.perf_counter()
    evaluation = AlertEvaluation(rule=rule, run_id=run_id or uuid.uuid4(), evaluated_at=now)
    alert = open_alert_of(rule)
    try:
        frozen = alert.first_window_start if alert else None
        judgements = rule_judgements(rule, now=now, frozen_before=frozen)
    except MetricError as error:
        evaluation.verdict, evaluation.error = Verdict.ERROR, str(error)
    except Exception as error:  # one broken rule must not stop the others
        log.exception("rule %s could not be evaluated", rule.pk)
        evaluation.verdict, evaluation.error = Verdict.ERROR, f"{type(error).__name__}: {error}"
    else:
        judged = [j for j in judgements if j.judged]
        shown = judged[-1] if judged else (judgements[-1] if judgements else None)
        evaluation_describe(evaluation, shown)
        if judged:
            alert = alert_transition(rule, alert, judged, now, tell=not replay)
    evaluation.alert = alert
    evaluation.state = alert.state if alert else ""
    evaluation.duration_ms = (time.perf_counter() - began) * 1000
    return evaluation


def evaluation_describe(evaluation: AlertEvaluation, judgement: Judgement | None) -> None:
    if judgement is None:
        evaluation.verdict = Verdict.NO_DATA
        return
    evaluation.window_start, evaluation.window_end = judgement.start, judgement.end
    evaluation.value, evaluation.n = judgement.value, judgement.n
    evaluation.lower, evaluation.upper = judgement.lower, judgement.upper
    evaluation.verdict = judgement.verdict


def tail_length(judged: list[Judgement], predicate) -> int:
    """How many of the latest judged windows in a row satisfy the predicate."""
    count = 0
    for judgement in reversed(judged):
        if not predicate(judgement):
            break
        count += 1
    return count


def breached(judgement: Judgement) -> bool:
    return judgement.breach


def recovered(judgement: Judgement) -> bool:
    return judgement.recovered


def alert_transition(
    rule: AlertRule, alert: Alert | None, judged: list[Judgement], now: datetime, *, tell: bool
) -> Alert | None:
    """Move the alert by the judged windows; `tell` records the messages the move needs."""
    latest = judged[-1]
    was_firing = alert.direction if alert is not None and alert.state == AlertState.FIRING else None
    if latest.breach:
        may_fire = tail_length(judged, breached) >= rule.for_windows and cooled_down(rule, now)
        alert = alert_open_or_update(rule, alert, judged, may_fire, now)
        if tell and was_firing and alert is not None and alert.direction != was_firing:
            direction_change_record(alert, now)
    elif alert is not None and (
        alert.state == AlertState.PENDING or tail_length(judged, recovered) >= rule.resolve_windows
    ):
        alert_resolve(alert, now, tell=tell)
        return None
    if alert is not None and alert.state == AlertState.FIRING:
        if tell:
            notifications_due_record(alert, now)
        retrain_on_firing(alert)  # the factory's hook: at most one retrain request per alert
    return alert


def cooled_down(rule: AlertRule, now: datetime) -> bool:
    """No new alert of this rule fires within cooldown_minutes of the previous one resolving."""
    last = rule.alerts.filter(state=AlertState.RESOLVED, resolved_at__isnull=False).first()
    return last is None or now - last.resolved_at >= timedelta(minutes=rule.cooldown_minutes)


def alert_fields(rule: AlertRule, latest: Judgement) -> dict:
    direction = Direction.NO_DATA if rule.kind == RuleKind.NO_DATA else latest.verdict
    return {
        "direction": direction,
        "value": latest.value,
        "n": latest.n,
        "lower": latest.lower,
        "upper": latest.upper,
        "window_start": latest.start,
        "window_end": latest.end,
    }


def alert_open_or_update(
    rule: AlertRule, alert: Alert | None, judged: list[Judgement], may_fire: bool, now: datetime
) -> Alert | None:
    state = AlertState.FIRING if may_fire else AlertState.PENDING
    fields = alert_fields(rule, judged[-1])
    if alert is None:
        first = judged[-tail_length(judged, breached)].start
        try:
            with transaction.atomic():
                return Alert.objects.create(
                    rule=rule,
                    model=rule.model,
                    state=state,
                    started_at=now,
                    first_window_start=first,
                    **fields,
                )
        except IntegrityError:  # another evaluator opened it first
            return open_alert_of(rule)
    if alert.state == AlertState.FIRING:
        state = AlertState.FIRING  # stays firing until enough windows are back inside
    Alert.objects.filter(pk=alert.pk).update(state=state, **fields)
    alert.refresh_from_db()
    return alert


def alert_resolve(alert: Alert, now: datetime, *, tell: bool = True) -> None:
    with transaction.atomic():
        changed = Alert.objects.filter(pk=alert.pk).exclude(state=AlertState.RESOLVED)
        if not changed.update(state=AlertState.RESOLVED, resolved_at=now) or not tell:
            return
        # Tell "resolved" only to those who were told it fired.
        told = alert.notifications.filter(kind=NotificationKind.FIRING)
        for channel, target, to in told.values_list("channel", "target", "recipients"):
            notification_record(alert, NotificationKind.RESOLVED, channel, target, to, 0, now)


def direction_change_record(alert: Alert, now: datetime) -> None:
    """A firing alert that crossed to the other side (too_low -> too_high) is told again:
    a new firing message, numbered after the previous ones so the unique key keeps it once."""
    if alert.rule.is_silenced(now):
        return
    firings = alert.notifications.filter(kind=NotificationKind.FIRING)
    previous = firings.aggregate(last=Max("sequence"))["last"]
    if previous is not None:  # never told it fired (silenced then): the firing message will
        channels_notify(alert, NotificationKind.FIRING, sequence=previous + 1, now=now)


def notifications_due_record(alert: Alert, now: datetime) -> None:
    """The firing message (once), then reminders every repeat_minutes until acknowledged."""
    rule = alert.rule
    if rule.is_silenced(now):
        return
    sent = alert.notifications.filter(kind__in=[NotificationKind.FIRING, NotificationKind.REMINDER])
    last = sent.order_by("-created_at").values_list("created_at", flat=True).first()
    if last is None:
        channels_notify(alert, NotificationKind.FIRING, sequence=0, now=now)
        return
    if alert.acknowledged_at or not rule.repeat_minutes:
        return
    if now - last >= timedelta(minutes=rule.repeat_minutes):
        reminders = sent.filter(kind=NotificationKind.REMINDER)
        sequence = (reminders.aggregate(last=Max("sequence"))["last"] or 0) + 1
        channels_notify(alert, NotificationKind.REMINDER, sequence=sequence, now=now)


def channels_notify(alert: Alert, kind: str, *, sequence: int, now: datetime) -> None:
    """E-mail to the rule's recipients, and each channel of the model (webhook, Slack,
    PagerDuty): the channel's kind names the transport, its URL is the target."""
    recipients = alert.rule.recipients or alert.model.on_call
    notification_record(alert, kind, "email", "", recipients, sequence, now)
    for channel in WebhookEndpoint.objects.filter(model_id=alert.model_id):
        to = channel.recipients
        notification_record(alert, kind, channel.kind, channel.url, to, sequence, now)


def acknowledgement_record(alert: Alert, now: datetime) -> None:
    """Tell an acknowledgement to the incident channels (PagerDuty) that were told it fired,
    so the page stops there too; e-mail and chat need no message for it."""
    told = alert.notifications.filter(
        kind=NotificationKind.FIRING, channel__in=ACKNOWLEDGING_CHANNELS
    )
    for channel, target, to in told.values_list("channel", "target", "recipients"):
        notification_record(alert, NotificationKind.ACKNOWLEDGED, channel, target, to, 0, now)


def notification_record(
    alert: Alert,
    kind: str,
    channel: str,
    target: str,
    recipients: list,
    sequence: int,
    now: datetime,
) -> None:
    """Record that this change must be told; the unique key keeps it to one row."""
    Notification.objects.bulk_create(
        [
            Notification(
                alert=alert,
                kind=kind,
                channel=channel,
                target=target,
                recipients=recipients,
                sequence=sequence,
                created_at=now,
            )
        ],
        ignore_conflicts=True,
    )


def rules_evaluate(*, model_id: int, now: datetime | None = None, replay: bool = False) -> int:
    """Evaluate every rule of a model once; the evaluations are written in one bulk insert.
    `replay`: `now` is a past moment of a backfill, and no message is recorded."""
    now = now or timezone.now()
    run_id = uuid.uuid4()
    value_rules_ensure(model_id=model_id)
    rules = list(AlertRule.objects.filter(model_id=model_id).select_related("model"))
    evaluations = [rule_evaluate(rule, now, run_id, replay=replay) for rule in rules]
    AlertEvaluation.objects.bulk_create(evaluations)
    # One statement keeps the audit trail bounded: a rule evaluated every minute leaves
    # about 43,000 rows in 30 days.
    AlertEvaluation.objects.filter(
        rule__model_id=model_id, evaluated_at__lt=now - EVALUATION_RETENTION
    ).delete()
    return len(rules)
