from __future__ import annotations

from common.http import OutboundError, post_json
from monitoring.alerts.messages import payload_render
from monitoring.alerts.transports.base import Transport, TransportError

TIMEOUT_S = 10
HEADERS = {"User-Agent": "Canary"}


class WebhookTransport(Transport):
    """POSTs JSON with a Slack-compatible `text` field to the model's webhook URL."""

    channel = "webhook"

    def send(self, notifications) -> str:
        payload = payload_render(notifications)
        try:
            post_json(self.target, payload, timeout_s=TIMEOUT_S, headers=HEADERS)
        except OutboundError as error:
            raise TransportError(str(error), permanent=error.permanent) from error
        return payload["subject"]
