from __future__ import annotations

import json
import urllib.error
import urllib.request

from monitoring.alerts.messages import payload_render
from monitoring.alerts.transports.base import Transport, TransportError

TIMEOUT_S = 10


class WebhookTransport(Transport):
    """POSTs JSON with a Slack-compatible `text` field to the model's webhook URL."""

    channel = "webhook"

    def send(self, notifications) -> str:
        payload = payload_render(notifications)
        request = urllib.request.Request(
            self.target,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "Canary"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S):
                pass
        except urllib.error.HTTPError as error:
            # The peer answered: a 4xx other than 429 will not get better by retrying.
            permanent = 400 <= error.code < 500 and error.code != 429
            message = f"HTTP {error.code} from the webhook"
            raise TransportError(message, permanent=permanent) from None
        except (urllib.error.URLError, OSError) as error:
            raise TransportError(f"{type(error).__name__}: {error}") from error
        return payload["subject"]
