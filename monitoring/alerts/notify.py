"""Delivery of alert notifications: claimed with a conditional update, grouped, retried.

A sender claims due notifications in one UPDATE (free ones only, marked with its token),
so two evaluators running at once never send the same one twice. The claimed rows are
grouped per model, channel and target: five breaches of one model found in one run make
one e-mail, and a reminder that message makes redundant is marked superseded, not counted
as sent. A failed group is retried with exponential backoff up to MAX_ATTEMPTS times;
permanent failures stop at once. Every outcome is recorded on the rows. Once the same peer
accepts a message again, what was given up for it is tried again.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import defaultdict
from datetime import datetime, timedelta

from django.db.models import F, Q, Subquery
from django.utils import timezone

from monitoring.alerts.transports import TRANSPORTS, TransportError
from monitoring.models import Notification, NotificationKind

log = logging.getLogger(__name__)
MAX_ATTEMPTS = Notification.MAX_ATTEMPTS
CLAIM_TTL = timedelta(minutes=5)
CLAIM_BATCH = 500  # notifications per claim; each row is a few hundred bytes in memory


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(30 * 2**attempts, 3600))


def notifications_claim(*, model_id: int | None, now: datetime) -> list[Notification]:
    """Claim up to CLAIM_BATCH due notifications for this caller; returns them."""
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    due = Notification.objects.filter(free, sent_at__isnull=True, attempts__lt=MAX_ATTEMPTS)
    if model_id is not None:
        due = due.filter(alert__model_id=model_id)
    token = uuid.uuid4()
    batch = Subquery(due.order_by("id").values("id")[:CLAIM_BATCH])
    # The conditions are repeated on the outer UPDATE: PostgreSQL re-checks them on rows
    # another sender locked first, so a row claimed there is skipped here.
    Notification.objects.filter(free, pk__in=batch, sent_at__isnull=True).update(
        claimed_until=now + CLAIM_TTL, claim_token=token, attempts=F("attempts") + 1
    )
    claimed = Notification.objects.filter(claim_token=token, sent_at__isnull=True)
    return list(claimed.select_related("alert__rule", "alert__model").order_by("id"))


def groups_of(notifications: list[Notification]) -> list[list[Notification]]:
    groups: dict[tuple, list[Notification]] = defaultdict(list)
    for n in notifications:
        key = (n.alert.model_id, n.channel, n.target, json.dumps(sorted(n.recipients)))
        groups[key].append(n)
    return list(groups.values())


def told(group: list[Notification]) -> list[Notification]:
    """What the message says: a reminder is dropped when the same alert has another change
    in the group (its firing or resolved message, still unsent after an outage)."""
    others = {n.alert_id for n in group if n.kind != NotificationKind.REMINDER}
    reminders: dict[int, Notification] = {}
    for n in group:
        if n.kind == NotificationKind.REMINDER and n.alert_id not in others:
            reminders[n.alert_id] = n  # the latest reminder of each alert
    return [n for n in group if n.kind != NotificationKind.REMINDER] + list(reminders.values())


def group_send(group: list[Notification], now: datetime) -> int:
    """Send one message for the group; record the outcome on every row of it. Returns the
    number of messages delivered: 1, or 0 on failure."""
    first = group[0]
    ids = [n.pk for n in group]
    rows = Notification.objects.filter(pk__in=ids)
    transport = TRANSPORTS[first.channel](first.target, first.recipients)
    telling = told(group)
    try:
        subject = transport.send(telling)
    except TransportError as error:
        attempts = max(n.attempts for n in group)  # the claim counted this one
        log.warning("%s notification %s failed: %s", first.channel, ids, error)
        given_up = error.permanent or attempts >= MAX_ATTEMPTS
        rows.update(
            error=f"{error} (attempt {attempts}{', given up' if given_up else ''})",
            claimed_until=now + retry_delay(attempts),
            attempts=MAX_ATTEMPTS if error.permanent else F("attempts"),
        )
        return 0
    rows.update(sent_at=timezone.now(), subject=subject[:300], error="")
    rows.exclude(pk__in=[n.pk for n in telling]).update(superseded=True)
    given_up_rearm(first)
    return 1


def given_up_rearm(sent: Notification) -> int:
    """The peer answered again: what was given up during its outage gets a fresh set of
    attempts, so it is delivered on the next send instead of being lost. (Nothing else
    to send? A firing alert's reminder is the next message, at most repeat_minutes on.)"""
    stranded = Notification.objects.filter(
        channel=sent.channel,
        target=sent.target,
        recipients=sent.recipients,
        sent_at__isnull=True,
        attempts__gte=MAX_ATTEMPTS,
    )
    return stranded.update(attempts=0, claimed_until=None)


def notifications_send(*, model_id: int | None = None, now: datetime | None = None) -> int:
    """Send every notification still due; returns how many messages were delivered (one
    per model, channel and target however many changes it tells)."""
    now = now or timezone.now()
    claimed = notifications_claim(model_id=model_id, now=now)
    return sum(group_send(group, now) for group in groups_of(claimed))
