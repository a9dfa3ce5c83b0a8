"""Template context every page gets."""

from __future__ import annotations

from django.conf import settings


def outbox(request) -> dict:
    """Whether e-mails are kept in the outbox (no SMTP server): the top bar links it then."""
    return {"outbox_in_use": settings.EMAIL_BACKEND.endswith("OutboxBackend")}
