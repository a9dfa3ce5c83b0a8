"""What Canary says about an alert, said once: the subject line, the one-line change, the
one-sentence summary and the rule in words, for the e-mail (text and HTML), the webhook and
the alert page. Links come from monitoring.alerts.links, a metric's words from the registry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.template.loader import render_to_string
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from monitoring.alerts.judge import series, window_count
from monitoring.alerts.links import AlertLinks, alert_links
from monitoring.metrics.registry import metric_get, metric_label
from monitoring.metrics.windows import WINDOW, MetricError
from monitoring.models import (
    Alert,
    AlertRule,
    AlertState,
    Direction,
    Notification,
    NotificationKind,
    RuleKind,
)

SPARKLINE_WINDOWS = 30
SPARK_W, SPARK_H = 240, 48
DIRECTION_WORDS = {
    Direction.TOO_LOW: "too low",
    Direction.TOO_HIGH: "too high",
    Direction.NO_DATA: "no data",
}
CHANGED = "Changed direction"


def direction_words(direction: str) -> str:
    return DIRECTION_WORDS.get(direction, direction.replace("_", " "))


def four_places(value: float | None) -> str:
    return "no value" if value is None else f"{value:.4f}"


def alert_title(alert: Alert) -> str:
    """The alert in a few words, as its page heads it: "churn: Accuracy too low"."""
    words = f"{metric_label(alert.rule.metric)} {direction_words(alert.direction)}"
    return f"{alert.model.name}: {words}"


def bound_words(alert: Alert) -> str:
    if alert.direction == Direction.TOO_LOW and alert.lower is not None:
        return f"below its lower bound {alert.lower:.4g}"
    if alert.direction == Direction.TOO_HIGH and alert.upper is not None:
        return f"above its upper bound {alert.upper:.4g}"
    if alert.direction == Direction.NO_DATA:
        return f"fewer than the {alert.rule.min_count} observations the rule expects"
    return "outside its bounds"


def alert_summary(alert: Alert) -> str:
    """What happened, in one sentence a person on call can act on."""
    rule = alert.rule
    scope = []
    scope += [f"version {rule.version}"] if rule.version else []
    scope += [f"segment “{rule.segment}”"] if rule.segment is not None else []
    where = f" ({', '.join(scope)})" if scope else ""
    value = "no value" if alert.value is None else f"{alert.value:.4g}"
    text = (
        f"{metric_label(rule.metric)} of {alert.model.name}{where} was {value} over "
        f"n = {alert.n:,} in the {rule.granularity} from {alert.window_start:%Y-%m-%d %H:%M} to "
        f"{alert.window_end:%Y-%m-%d %H:%M} UTC, {bound_words(alert)}."
    )
    if alert.state == AlertState.RESOLVED and alert.resolved_at:
        return text + f" It was resolved at {alert.resolved_at:%Y-%m-%d %H:%M} UTC."
    return text + f" The alert has been {alert.state} since {alert.started_at:%Y-%m-%d %H:%M} UTC."


def rule_words(rule: AlertRule) -> str:
    """When the rule fires, in words: "fires when Accuracy is below 0.8"."""
    metric = metric_label(rule.metric)
    if rule.kind == RuleKind.STATIC:
        bounds = [f"below {rule.lower:g}"] if rule.lower is not None else []
        bounds += [f"above {rule.upper:g}"] if rule.upper is not None else []
        return f"fires when {metric} is {' or '.join(bounds)}"
    if rule.kind == RuleKind.BAND:
        return (
            f"fires when {metric} leaves the mean of the last {rule.baseline_windows} "
            f"windows ± {rule.k:g} standard errors of the window ({rule.sides.replace('_', ' ')})"
        )
    if rule.kind == RuleKind.RELATIVE:
        baseline = (
            f"version {rule.baseline_version}"
            if rule.baseline_version
            else f"the mean of the last {rule.baseline_windows} windows"
        )
        return f"fires when {metric} moves more than {rule.percent:g}% from {baseline}"
    return f"fires when a {rule.granularity} has fewer than {rule.min_count} {metric}"


@dataclass
class Item:
    """One alert's change, as told: the alert, the kind of change, its links and evidence."""

    alert: Alert
    kind: str
    changed: bool  # a firing alert that crossed to the other side of its bounds
    links: AlertLinks
    sparkline_svg: SafeString | str  # built by format_html from escaped values, or ""

    @property
    def metric(self) -> str:
        return metric_label(self.alert.rule.metric)

    @property
    def direction(self) -> str:
        return direction_words(self.alert.direction)

    @property
    def headline(self) -> str:
        """The change in one line: "Firing (warning): Accuracy of churn is too low"."""
        about = f"{self.metric} of {self.alert.model.name}"
        severity = self.alert.rule.severity
        if self.kind == NotificationKind.RESOLVED:
            return f"Resolved: {about} is back within its bounds"
        if self.changed:
            return f"{CHANGED} ({severity}): {about} is now {self.direction}"
        if self.kind == NotificationKind.REMINDER:
            return f"Still firing ({severity}): {about} is {self.direction}"
        return f"Firing ({severity}): {about} is {self.direction}"

    @property
    def summary(self) -> str:
        return alert_summary(self.alert)

    @property
    def rule_words(self) -> str:
        return rule_words(self.alert.rule)

    @property
    def short(self) -> str:
        """The change in a subject's few words: "Accuracy too low (0.4000 < 0.8000)"."""
        alert = self.alert
        if self.kind == NotificationKind.RESOLVED:
            return f"{self.metric} is back within bounds ({four_places(alert.value)})"
        against = ""
        if alert.direction == Direction.TOO_LOW:
            against = f" < {four_places(alert.lower)}"
        elif alert.direction == Direction.TOO_HIGH:
            against = f" > {four_places(alert.upper)}"
        now = "now " if self.changed else ""
        return f"{self.metric} {now}{self.direction} ({four_places(alert.value)}{against})"


def subject_line(items: list[Item]) -> str:
    model = items[0].alert.model.name
    if len(items) > 1:
        changes = ", ".join(
            f"{i.metric} {'resolved' if i.kind == NotificationKind.RESOLVED else i.direction}"
            for i in items
        )
        return f"[Canary] {model}: {len(items)} alert changes ({changes})"
    (item,) = items
    prefix = {NotificationKind.RESOLVED: "RESOLVED ", NotificationKind.REMINDER: "STILL FIRING "}
    marker = "CHANGED " if item.changed else prefix.get(item.kind, "")
    return f"[Canary] {marker}{model}: {item.short}"


def sparkline_svg(alert: Alert) -> SafeString | str:
    """An inline SVG of the metric's last windows with the bounds dashed; no external host."""
    rule = alert.rule
    start = alert.window_end - WINDOW[rule.granularity] * SPARKLINE_WINDOWS
    try:
        points = series(rule, start=start, now=alert.window_end)
    except MetricError:
        return ""
    metric = metric_get(rule.metric)
    values = [window_count(metric, p) if metric.reads else p.value for p in points]
    known = [v for v in values if v is not None]
    bounds = [b for b in (alert.lower, alert.upper) if b is not None]
    if not known:
        return ""
    low, high = min(known + bounds), max(known + bounds)
    span = (high - low) or 1.0

    def y(value: float) -> float:
        return round(SPARK_H - 4 - (value - low) / span * (SPARK_H - 8), 1)

    step = SPARK_W / max(len(values) - 1, 1)
    path = " ".join(f"{i * step:.1f},{y(v)}" for i, v in enumerate(values) if v is not None)
    lines = format_html_join(
        "",
        '<line x1="0" x2="{}" y1="{}" y2="{}" stroke="#c0392b" stroke-dasharray="4 3" '
        'stroke-width="1"/>',
        ((SPARK_W, y(b), y(b)) for b in bounds),
    )
    # format_html escapes every value it fills in: the metric's words may be a user's name.
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        'viewBox="0 0 {w} {h}" role="img" aria-label="{label} sparkline">'
        '{lines}<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{path}"/></svg>',
        w=SPARK_W,
        h=SPARK_H,
        label=metric_label(rule.metric),
        lines=lines,
        path=path,
    )


def changed_direction(notification: Notification) -> bool:
    """A firing message after the first one: the alert crossed to the other side."""
    return notification.kind == NotificationKind.FIRING and notification.sequence > 0


def items_of(notifications: list[Notification]) -> list[Item]:
    return [
        Item(
            alert=n.alert,
            kind=n.kind,
            changed=changed_direction(n),
            links=alert_links(n.alert, absolute=True),
            sparkline_svg=sparkline_svg(n.alert),
        )
        for n in notifications
    ]


def message_render(notifications: list[Notification]) -> tuple[str, str, str]:
    """Subject, plain text and HTML telling these notifications of one model together."""
    items = items_of(notifications)
    context = {"model": items[0].alert.model, "items": items}
    text = render_to_string("emails/alert.txt", context)
    html = render_to_string("emails/alert.html", context)
    return subject_line(items), text, html


def payload_render(notifications: list[Notification]) -> dict:
    """A webhook's JSON: a Slack-compatible `text` and the alerts as data."""
    subject, text, _ = message_render(notifications)
    alerts = [alert_data(n) for n in notifications]
    return {
        "text": text,
        "subject": subject,
        "model": notifications[0].alert.model.name,
        "alerts": alerts,
    }


def alert_data(notification: Notification) -> dict:
    alert = notification.alert
    links = alert_links(alert, absolute=True)
    return {
        "id": alert.pk,
        "kind": notification.kind,
        "state": alert.state,
        "changed_direction": changed_direction(notification),
        "metric": alert.rule.metric,
        "direction": alert.direction,
        "value": alert.value,
        "lower": alert.lower,
        "upper": alert.upper,
        "n": alert.n,
        "window_start": alert.window_start.isoformat(),
        "window_end": alert.window_end.isoformat(),
        "severity": alert.rule.severity,
        "chart_url": links.chart,
        "alert_url": links.page,
    }


CHANNEL_WORDS = {
    "email": "e-mail",
    "webhook": "webhook",
    "slack": "Slack",
    "pagerduty": "PagerDuty",
}
WAITING_WORDS = {"failed": "failed", "retrying": "failing", "held": "held by the silence"}


def channel_words(channels: set[str]) -> str:
    names = sorted(CHANNEL_WORDS.get(c, c) for c in channels)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def plural(count: int, word: str, words: str = "") -> str:
    return f"{count} {word if count == 1 else words or word + 's'}"


def messages_told(notifications: list[Notification], now: datetime) -> str:
    """What people were told about one alert, counted as they received it: the firing
    message, each change of direction, each reminder and the resolution count once however
    many channels carried them; a reminder a later message made redundant (superseded) is
    not counted. Then what is still on its way: "firing and 3 reminders sent by e-mail;
    1 due"."""
    states = [(n, n.delivery_state(now)) for n in notifications]
    sent = [n for n, state in states if state == "sent"]
    changes = {(n.kind, n.sequence) for n in sent}
    kinds = [kind for kind, _ in changes]
    told = ["firing"] if (NotificationKind.FIRING, 0) in changes else []
    turned = kinds.count(NotificationKind.FIRING) - len(told)
    told += [plural(turned, "change of direction", "changes of direction")] if turned else []
    reminders = kinds.count(NotificationKind.REMINDER)
    told += [plural(reminders, "reminder")] if reminders else []
    told += ["resolution"] if NotificationKind.RESOLVED in kinds else []
    parts = []
    if told:
        listed = told[0] if len(told) == 1 else f"{', '.join(told[:-1])} and {told[-1]}"
        parts.append(f"{listed} sent by {channel_words({n.channel for n in sent})}")
    waiting = [state for _, state in states if state not in ("sent", "superseded")]
    for state in ("failed", "retrying", "held", "due"):
        if waiting.count(state):
            parts.append(f"{waiting.count(state)} {WAITING_WORDS.get(state, state)}")
    return "; ".join(parts) or "no message"
