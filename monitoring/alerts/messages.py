"""What Canary says about an alert, said once: the subject line, the one-line change, the
one-sentence summary and the rule in words, for the e-mail (text and HTML), the webhook and
the alert page. Links come from monitoring.alerts.links, a metric's words from the registry.

The e-mail carries no SVG (mail programs strip it) and loads nothing from elsewhere: its chart
is a PNG inside the message, shown by `cid:`."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.template.loader import render_to_string
from django.utils import timezone

from common.sparkline import sparkline_png
from monitoring.alerts.judge import series, window_count
from monitoring.alerts.links import ActionLinks, AlertLinks, action_links, alert_links
from monitoring.metrics.explain import Explanation, explain, explainable, whole_days
from monitoring.metrics.explain_words import driver_lines
from monitoring.metrics.maturity import (
    COMPLETE_SHARE,
    estimate_words,
    label_maturity_get,
    wait_words,
)
from monitoring.metrics.registry import metric_find, metric_get, metric_label
from monitoring.metrics.series import metric_series
from monitoring.metrics.windows import WINDOW, MetricError
from monitoring.models import (
    Alert,
    AlertRule,
    AlertState,
    Direction,
    HourlyAggregate,
    Notification,
    NotificationKind,
    RuleKind,
    Severity,
    Sides,
)

logger = logging.getLogger(__name__)

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


def sides_words(sides: str) -> str:
    """ "too low or too high", "only too low": the rule form's words for the sides."""
    return Sides(sides).label.lower() if sides in Sides.values else sides.replace("_", " ")


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
            f"windows ± {rule.k:g} standard errors of the window ({sides_words(rule.sides)})"
        )
    if rule.kind == RuleKind.RELATIVE:
        baseline = (
            f"version {rule.baseline_version}"
            if rule.baseline_version
            else f"the mean of the last {rule.baseline_windows} windows"
        )
        return f"fires when {metric} moves more than {rule.percent:g}% from {baseline}"
    return f"fires when a {rule.granularity} has fewer than {rule.min_count} {metric}"


@dataclass(frozen=True)
class InlineImage:
    """A picture sent inside the message and shown by `cid:` (no outside host to block)."""

    cid: str
    png: bytes
    filename: str
    alt: str
    caption: str


@dataclass
class Item:
    """One alert's change, as told: the alert, the kind of change, its links and evidence."""

    alert: Alert
    kind: str
    changed: bool  # a firing alert that crossed to the other side of its bounds
    links: AlertLinks
    actions: ActionLinks | None = None  # e-mail only: signed links to act on the alert
    chart: InlineImage | None = None  # e-mail only: the metric's last windows, as a PNG
    versions: list[str] = field(default_factory=list)  # what served the alert's window
    drivers: list[str] = field(default_factory=list)  # see alert_drivers
    outcomes: str = ""  # see outcomes_words

    @property
    def metric(self) -> str:
        return metric_label(self.alert.rule.metric)

    @property
    def direction(self) -> str:
        return direction_words(self.alert.direction)

    @property
    def critical(self) -> bool:
        return self.alert.rule.severity == Severity.CRITICAL

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
    def version_words(self) -> str:
        """ "1.1.0", "1.0.0 and 1.1.0", or "" when no prediction was in the window."""
        names = self.versions
        if len(names) < 2:
            return "".join(names)
        return f"{', '.join(names[:-1])} and {names[-1]}"

    @property
    def change_words(self) -> str:
        """The change as a subject names it: "Accuracy too low", "ROC AUC resolved"."""
        resolved = self.kind == NotificationKind.RESOLVED
        return f"{self.metric} {'resolved' if resolved else self.direction}"

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


def urgency(item: Item) -> tuple[int, int]:
    """Critical before warning; a firing or changed alert before a reminder, resolved last."""
    order = {NotificationKind.FIRING: 0, NotificationKind.REMINDER: 1}
    resolved = item.kind == NotificationKind.RESOLVED
    return (0 if item.critical and not resolved else 1, order.get(item.kind, 2))


def subject_line(items: list[Item]) -> str:
    """Critical first, each change named once: two rules finding accuracy too low make
    "Accuracy too low on 2 rules", not the same words twice."""
    items = sorted(items, key=urgency)
    model = items[0].alert.model.name
    critical = "CRITICAL " if urgency(items[0])[0] == 0 else ""
    if len(items) > 1:
        counts = Counter(i.change_words for i in items)
        named = ", ".join(
            words if count == 1 else f"{words} on {count} rules"
            for words, count in counts.items()  # in the order first met: critical first
        )
        return f"[Canary] {critical}{model}: {len(items)} alert changes ({named})"
    (item,) = items
    prefix = {NotificationKind.RESOLVED: "RESOLVED ", NotificationKind.REMINDER: "STILL FIRING "}
    marker = "CHANGED " if item.changed else prefix.get(item.kind, "")
    return f"[Canary] {critical}{marker}{model}: {item.short}"


def chart_values(alert: Alert) -> list[float | None]:
    """The rule's metric over the last SPARKLINE_WINDOWS windows up to the alert's (a
    no_data rule's count, for a pseudo-metric); [] when it cannot be computed."""
    rule = alert.rule
    start = alert.window_end - WINDOW[rule.granularity] * SPARKLINE_WINDOWS
    try:
        points = series(rule, start=start, now=alert.window_end)
    except MetricError:
        return []
    metric = metric_get(rule.metric)
    values = [window_count(metric, p) if metric.reads else p.value for p in points]
    first = next((i for i, p in enumerate(points) if p.n), len(points))
    return values[first:]  # from the first window with data: a young model fills the width


def alert_chart(alert: Alert) -> InlineImage | None:
    """The sparkline of the metric with the bounds dashed and the alert's window dotted."""
    values = chart_values(alert)
    if not any(v is not None for v in values):
        return None
    bounds = [b for b in (alert.lower, alert.upper) if b is not None]
    png = sparkline_png(values, bounds=bounds, width=SPARK_W, height=SPARK_H)
    count = len(values)
    windows = f"{count} {alert.rule.granularity}{'s' if count > 1 else ''}"
    return InlineImage(
        cid=f"alert-{alert.pk}-chart@canary",
        png=png,
        filename=f"alert-{alert.pk}.png",
        alt=f"{metric_label(alert.rule.metric)} over the last {windows}, bounds dashed",
        caption=f"The last {windows}; dashed: the rule's bounds; dot: the alert's window.",
    )


def window_versions(alert: Alert) -> list[str]:
    """The versions that made the predictions of the alert's window (the rule's, if it
    watches one)."""
    if alert.rule.version:
        return [alert.rule.version]
    hours = HourlyAggregate.objects.filter(
        model_id=alert.model_id, hour__gte=alert.window_start, hour__lt=alert.window_end
    )
    names = hours.values_list("version__version", flat=True).distinct()
    return sorted(names)


def alert_explanation(alert: Alert) -> Explanation | None:
    """Why the alert's metric moved: the alert's days against as many days just before, in the
    rule's version and segment; None when the metric is not one explain takes, or the
    explanation cannot be made (no data before, say). Never raises: a message is sent and a
    page shown without drivers rather than not at all; an unexpected failure is logged."""
    rule = alert.rule
    metric = metric_find(rule.metric)
    if alert.direction == Direction.NO_DATA or metric is None or not explainable(metric):
        return None
    start, end = whole_days(alert.window_start, alert.window_end)  # an hour: its day
    try:
        return explain(
            model=alert.model,
            metric=rule.metric,
            start=start,
            end=end,
            version=rule.version or None,
            segment=rule.segment,
        )
    except MetricError:
        return None
    except Exception:
        logger.exception("alert %s: its drivers could not be computed", alert.pk)
        return None


def alert_drivers(alert: Alert) -> list[str]:
    """The top drivers of the alert's change (at most three), each a line with its effect
    and q-value: "Within region south: -8.1 points (Accuracy fell from 0.90 to 0.65 there),
    q = 0.003". None when there is no explanation."""
    answer = alert_explanation(alert)
    return driver_lines(answer) if answer else []


def outcomes_words(alert: Alert, now: datetime | None = None) -> str:
    """For a realised metric whose window still waits for outcomes: how many are in and when
    the rest arrive, "62% of the window's expected outcomes are in; the rest arrive in about
    4 days, so the value may still move". Empty once they are all in (or none is known). For
    an estimate: "Estimated from scores; outcomes arrive in about 12 days" (a full stop after)."""
    rule = alert.rule
    entry = metric_get(rule.metric)
    if entry.family != "estimated" and (not entry.realised or alert.window_start is None):
        return ""
    now = now or timezone.now()
    if entry.family == "estimated":  # judged before its outcomes: say so, and for how long
        # (the model's delays: a canary's first days have none of their own to tell it)
        words = estimate_words(label_maturity_get(model=alert.model, now=now, segment=rule.segment))
        return f"{words[0].upper()}{words[1:]}."
    maturity = label_maturity_get(
        model=alert.model, now=now, version=rule.version, segment=rule.segment
    )
    points = metric_series(
        model=alert.model,
        metric="label_coverage",
        granularity=rule.granularity,
        start=alert.window_start,
        end=alert.window_end,
        version=rule.version,
        segment=rule.segment,
    )
    if not points:
        return ""
    point = points[0]
    share = maturity.share(point.label_coverage)
    middle_s = (maturity.now - (point.start + (point.end - point.start) / 2)).total_seconds()
    remaining_s = maturity.remaining_s(middle_s)
    if share is None or share >= COMPLETE_SHARE or remaining_s is None:
        return ""
    return (
        f"{share:.0%} of the window's expected outcomes are in; the rest arrive in "
        f"{wait_words(remaining_s)}, so the value may still move."
    )


def changed_direction(notification: Notification) -> bool:
    """A firing message after the first one: the alert crossed to the other side."""
    return notification.kind == NotificationKind.FIRING and notification.sequence > 0


def items_of(notifications: list[Notification], *, for_email: bool = False) -> list[Item]:
    """The changes to tell, most urgent first; `for_email` adds what only an e-mail carries
    (the chart and the signed action links)."""
    items = [
        Item(
            alert=n.alert,
            kind=n.kind,
            changed=changed_direction(n),
            links=alert_links(n.alert, absolute=True),
            actions=action_links(n.alert, absolute=True) if for_email else None,
            chart=alert_chart(n.alert) if for_email else None,
            versions=window_versions(n.alert),
            drivers=[] if n.kind == NotificationKind.RESOLVED else alert_drivers(n.alert),
            outcomes=outcomes_words(n.alert) if n.kind != NotificationKind.RESOLVED else "",
        )
        for n in notifications
    ]
    return sorted(items, key=urgency)


@dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str
    images: list[InlineImage]


def email_render(notifications: list[Notification]) -> Email:
    """The e-mail telling these notifications of one model together: subject, plain text,
    HTML and the pictures its HTML shows by cid."""
    items = items_of(notifications, for_email=True)
    context = {"model": items[0].alert.model, "items": items}
    text = render_to_string("emails/alert.txt", context)
    html = render_to_string("emails/alert.html", context)
    images = [item.chart for item in items if item.chart]
    return Email(subject_line(items), text, html, images)


def payload_render(notifications: list[Notification]) -> dict:
    """A webhook's JSON: a Slack-compatible `text` and the alerts as data."""
    items = items_of(notifications)
    subject = subject_line(items)
    text = render_to_string("emails/alert.txt", {"model": items[0].alert.model, "items": items})
    drivers = {item.alert.pk: item.drivers for item in items}
    alerts = [alert_data(n, drivers[n.alert.pk]) for n in notifications]
    return {
        "text": text,
        "subject": subject,
        "model": notifications[0].alert.model.name,
        "alerts": alerts,
    }


def alert_data(notification: Notification, drivers: list[str]) -> dict:
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
        "drivers": drivers,
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
