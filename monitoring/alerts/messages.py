"""What a notification says: one message per model and channel, for one or more alerts."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from monitoring.alerts.judge import series
from monitoring.metrics.windows import WINDOW, MetricError
from monitoring.models import Alert, Notification, NotificationKind

SPARKLINE_WINDOWS = 30
SPARK_W, SPARK_H = 240, 48


@dataclass
class Item:
    """One alert's change, as told: the alert, its rule, the kind of change and its evidence."""

    alert: Alert
    kind: str
    direction: str
    changed: bool  # a firing alert that crossed to the other side of its bounds
    chart_url: str
    sparkline_svg: str
    alert_url: str = ""


def chart_url(alert: Alert) -> str:
    page = settings.CANARY_BASE_URL + reverse("dashboard:model", kwargs={"name": alert.model.name})
    metric = alert.rule.metric
    return f"{page}?metric={metric}#metric-{metric}"


def alert_url(alert: Alert) -> str:
    """The alert's own page: what happened, the evaluations, the messages, the chart."""
    kwargs = {"name": alert.model.name, "pk": alert.pk}
    return settings.CANARY_BASE_URL + reverse("dashboard:alert", kwargs=kwargs)


def sparkline_svg(alert: Alert) -> str:
    """An inline SVG of the metric's last windows with the bounds dashed; no external host."""
    rule = alert.rule
    start = alert.window_end - WINDOW[rule.granularity] * SPARKLINE_WINDOWS
    try:
        points = series(rule, start=start, now=alert.window_end)
    except MetricError:
        return ""
    values = [p.value for p in points]
    if rule.metric == "outcomes":
        values = [round((p.value or 0) * p.n) for p in points]
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
    lines = "".join(
        f'<line x1="0" x2="{SPARK_W}" y1="{y(b)}" y2="{y(b)}" stroke="#c0392b" '
        f'stroke-dasharray="4 3" stroke-width="1"/>'
        for b in bounds
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SPARK_W}" height="{SPARK_H}" '
        f'viewBox="0 0 {SPARK_W} {SPARK_H}" role="img" aria-label="{rule.metric} sparkline">'
        f'{lines}<polyline fill="none" stroke="#1f6feb" stroke-width="1.5" points="{path}"/></svg>'
    )


def items_of(notifications: list[Notification]) -> list[Item]:
    return [
        Item(
            alert=n.alert,
            kind=n.kind,
            direction=n.alert.direction.replace("_", " "),
            changed=n.kind == NotificationKind.FIRING and n.sequence > 0,
            chart_url=chart_url(n.alert),
            sparkline_svg=sparkline_svg(n.alert),
            alert_url=alert_url(n.alert),
        )
        for n in notifications
    ]


def message_render(notifications: list[Notification]) -> tuple[str, str, str]:
    """Subject, plain text and HTML telling these notifications of one model together."""
    items = items_of(notifications)
    context = {"model": items[0].alert.model, "items": items, "item": items[0]}
    subject = render_to_string("emails/alert_subject.txt", context).strip()
    text = render_to_string("emails/alert.txt", context)
    html = render_to_string("emails/alert.html", context)
    return " ".join(subject.split()), text, html


def payload_render(notifications: list[Notification]) -> dict:
    """A webhook's JSON: a Slack-compatible `text` and the alerts as data."""
    subject, text, _ = message_render(notifications)
    alerts = [
        {
            "id": n.alert.pk,
            "kind": n.kind,
            "state": n.alert.state,
            "changed_direction": n.kind == NotificationKind.FIRING and n.sequence > 0,
            "metric": n.alert.rule.metric,
            "direction": n.alert.direction,
            "value": n.alert.value,
            "lower": n.alert.lower,
            "upper": n.alert.upper,
            "n": n.alert.n,
            "window_start": n.alert.window_start.isoformat(),
            "window_end": n.alert.window_end.isoformat(),
            "severity": n.alert.rule.severity,
            "chart_url": chart_url(n.alert),
            "alert_url": alert_url(n.alert),
        }
        for n in notifications
    ]
    return {
        "text": text,
        "subject": subject,
        "model": notifications[0].alert.model.name,
        "alerts": alerts,
    }
