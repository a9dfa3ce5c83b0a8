"""The base of every notification channel, in the style of healthchecks' integrations."""

from __future__ import annotations

from monitoring.models import Notification


class TransportError(Exception):
    """Delivery failed; `permanent` ones are not retried (a malformed address, a 404)."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class Transport:
    """Sends one message about one or more notifications of the same model and target."""

    channel = ""

    def __init__(self, target: str, recipients: list):
        self.target = target
        self.recipients = recipients

    def send(self, notifications: list[Notification]) -> str:
        """Deliver, or raise TransportError; returns the subject, for the record."""
        raise NotImplementedError
