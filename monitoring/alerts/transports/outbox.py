"""The embedded mode's e-mail: kept in the database and shown on the dashboard's outbox page,
instead of printed as raw MIME to the console. Settings pick it when EMAIL_HOST is empty."""

from __future__ import annotations

import base64
import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import EmailMessage

from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction

from monitoring.models import OutboxEmail

CID = re.compile(r"""(["'])cid:([^"']+)\1""")


class OutboxBackend(BaseEmailBackend):
    """Django's e-mail backend API: each message becomes an OutboxEmail row."""

    def send_messages(self, email_messages) -> int:
        rows = [
            OutboxEmail(
                from_email=message.from_email,
                to=list(message.to) + list(message.cc) + list(message.bcc),
                subject=message.subject[:1000],
                message=message.message().as_string(),
            )
            for message in email_messages
        ]
        with transaction.atomic():
            OutboxEmail.objects.bulk_create(rows)
            outbox_trim()
        return len(rows)


def outbox_trim() -> int:
    """Drop all but the newest OutboxEmail.KEEP messages; returns how many went."""
    keep = OutboxEmail.objects.values_list("pk", flat=True)[: OutboxEmail.KEEP]
    return OutboxEmail.objects.exclude(pk__in=list(keep)).delete()[0]


@dataclass
class ReadableEmail:
    """An outbox message as its recipient's mail program would show it."""

    text: str = ""
    html: str = ""  # with inline images (cid:) turned into data: URLs
    attachments: list[str] = field(default_factory=list)  # file names


def outbox_readable(row: OutboxEmail) -> ReadableEmail:
    # Parsed from bytes: an 8bit UTF-8 part parsed from a str decodes its non-ASCII wrong.
    raw = row.message.encode("utf-8")
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    readable, images = ReadableEmail(), {}
    for part in message.walk():
        if part.is_multipart():
            continue
        kind, cid = part.get_content_type(), (part["Content-ID"] or "").strip("<>")
        if kind == "text/plain" and not readable.text and not part.get_filename():
            readable.text = part.get_content()
        elif kind == "text/html" and not readable.html:
            readable.html = part.get_content()
        elif cid and kind.startswith("image/"):
            images[cid] = (
                f"data:{kind};base64,{base64.b64encode(part.get_payload(decode=True)).decode()}"
            )
        elif part.get_filename():
            readable.attachments.append(part.get_filename())
    readable.html = CID.sub(lambda m: m[1] + images.get(m[2], "") + m[1], readable.html)
    return readable
