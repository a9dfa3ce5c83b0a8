from __future__ import annotations

from email.mime.image import MIMEImage

from django.core.mail import EmailMultiAlternatives

from monitoring.alerts.messages import Email, email_render
from monitoring.alerts.transports.base import Transport, TransportError


def email_message(email: Email, recipients: list[str]) -> EmailMultiAlternatives:
    """Text and HTML alternatives inside multipart/related with the PNGs the HTML shows by
    cid, so mail programs show the pictures inline and list no attachment."""
    message = EmailMultiAlternatives(email.subject, email.text, to=recipients)
    message.attach_alternative(email.html, "text/html")
    message.mixed_subtype = "related"
    for image in email.images:
        part = MIMEImage(image.png, "png")
        part.add_header("Content-ID", f"<{image.cid}>")
        part.add_header("Content-Disposition", "inline", filename=image.filename)
        message.attach(part)
    return message


class EmailTransport(Transport):
    """HTML and plain-text e-mail to the rule's recipients (default: the model's on-call)."""

    channel = "email"

    def send(self, notifications) -> str:
        if not self.recipients:
            raise TransportError(
                "no recipients: set the model's on-call list or the rule's recipients",
                permanent=True,
            )
        email = email_render(notifications)
        try:
            email_message(email, self.recipients).send()
        except OSError as error:  # SMTP errors are OSErrors: the server may be back later
            raise TransportError(f"{type(error).__name__}: {error}") from error
        return email.subject
