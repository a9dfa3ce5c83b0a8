"""PagerDuty's Events API v2: an alert is one incident, kept by its dedup key.

A firing alert (and each reminder, which PagerDuty folds into the same incident) is a
`trigger`, an acknowledgement in Canary an `acknowledge`, a resolved alert a `resolve`, all
with the alert's dedup key, so the incident opens, quiets and closes with the alert. Each
alert is its own event: PagerDuty has no message that carries several incidents. Sending a
group again after a failure repeats events PagerDuty has seen; the dedup key makes that
harmless.
"""

from __future__ import annotations

from common.http import OutboundError, post_json
from monitoring.alerts.links import alert_links
from monitoring.alerts.messages import alert_summary, alert_title
from monitoring.alerts.transports.base import Transport, TransportError
from monitoring.models import Alert, Notification, NotificationKind

TIMEOUT_S = 10
HEADERS = {"User-Agent": "Canary"}
SUMMARY_LIMIT = 1024  # PagerDuty's limit on payload.summary
ACTIONS = {
    NotificationKind.FIRING: "trigger",
    NotificationKind.REMINDER: "trigger",
    NotificationKind.ACKNOWLEDGED: "acknowledge",
    NotificationKind.RESOLVED: "resolve",
}
# Canary's severities in PagerDuty's words (critical, error, warning, info).
SEVERITIES = {"critical": "critical", "warning": "warning"}


def dedup_key(alert: Alert) -> str:
    """One incident per alert: the same key from its first trigger to its resolve."""
    return f"canary-{alert.model.name}-alert-{alert.pk}"


def pagerduty_event(notification: Notification, routing_key: str) -> dict:
    """The Events API v2 body telling this notification."""
    alert = notification.alert
    event = {
        "routing_key": routing_key,
        "event_action": ACTIONS[notification.kind],
        "dedup_key": dedup_key(alert),
    }
    if event["event_action"] != "trigger":
        return event
    links = alert_links(alert, absolute=True)
    event["payload"] = {
        "summary": alert_title(alert)[:SUMMARY_LIMIT],
        "source": f"canary model {alert.model.name}",
        "severity": SEVERITIES.get(alert.rule.severity, "warning"),
        "timestamp": alert.started_at.isoformat(),
        "component": alert.model.name,
        "group": alert.rule.metric,
        "class": alert.direction,
        "custom_details": {
            "summary": alert_summary(alert),
            "value": alert.value,
            "lower": alert.lower,
            "upper": alert.upper,
            "n": alert.n,
            "window_start": alert.window_start.isoformat(),
            "window_end": alert.window_end.isoformat(),
        },
    }
    event["links"] = [
        {"href": links.chart, "text": "Chart in Canary"},
        {"href": links.page, "text": "Alert in Canary"},
    ]
    event["client"] = "Canary"
    event["client_url"] = links.page
    return event


class PagerDutyTransport(Transport):
    """One Events API v2 event per notification, to the URL the channel was set up with;
    `recipients` holds the service's integration (routing) key."""

    channel = "pagerduty"

    def send(self, notifications) -> str:
        (routing_key,) = self.recipients
        events = [pagerduty_event(n, routing_key) for n in notifications]
        for event in events:
            try:
                post_json(self.target, event, timeout_s=TIMEOUT_S, headers=HEADERS)
            except OutboundError as error:
                raise TransportError(str(error), permanent=error.permanent) from error
        return ", ".join(f"{e['event_action']} {e['dedup_key']}" for e in events)
