from __future__ import annotations

from django.core.mail import EmailMultiAlternatives

from monitoring.alerts.messages import message_render
from monitoring.alerts.transports.base import Transport, TransportError


class EmailTransport(Transport):
    """HTML and plain-text e-mail to the rule's recipients (default: the model's on-call)."""

    channel = "email"

    def send(self, notifications) -> str:
        if not self.recipients:
            raise TransportError(
                "no recipients: set the model's on-call list or the rule's recipients",
                permanent=True,
            )
        subject, text, html = message_render(notifications)
        message = EmailMultiAlternatives(subject, text, to=self.recipients)
        message.attach_alternative(html, "text/html")
        try:
            message.send()
        except OSError as error:  # SMTP errors are OSErrors: the server may be back later
            raise TransportError(f"{type(error).__name__}: {error}") from error
        return subject
