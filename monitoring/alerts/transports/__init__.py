"""Notification channels by name; a Notification's `channel` picks one."""

from __future__ import annotations

from monitoring.alerts.transports.base import Transport, TransportError
from monitoring.alerts.transports.email import EmailTransport
from monitoring.alerts.transports.pagerduty import PagerDutyTransport
from monitoring.alerts.transports.slack import SlackTransport
from monitoring.alerts.transports.webhook import WebhookTransport

TRANSPORTS: dict[str, type[Transport]] = {
    EmailTransport.channel: EmailTransport,
    WebhookTransport.channel: WebhookTransport,
    SlackTransport.channel: SlackTransport,
    PagerDutyTransport.channel: PagerDutyTransport,
}

__all__ = ["TRANSPORTS", "Transport", "TransportError"]
