"""Reads off a PostgreSQL streaming replica (DATABASE_REPLICA_URL; docs/operations.md).

Pages and GET answers read from the replica; every write, every Celery job and management
command, and a user's reads until the replica has replayed that user's last write, use the
primary. The choice is made once per request by `ReplicaReadsMiddleware` and held in a context
variable that the router reads: code outside a request (jobs, commands, shells) never sets it,
so it reads from the primary without having to say so.

A user's last write is remembered as the primary's WAL position after it (a signed cookie for
browsers, a cache entry for an API key): a read goes to the primary only while the replica has
not replayed that far, which is usually a few milliseconds, and at most CANARY_REPLICA_WAIT_S.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connections

logger = logging.getLogger(__name__)

PRIMARY, REPLICA = "default", "replica"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITE_COOKIE = "canary_wrote"
WRITE_SALT = "canary.replica.wrote"
# The lag shown on pages is measured at most this often per process.
LAG_CHECK_EVERY_S = 5.0

_reads_from: ContextVar[str] = ContextVar("canary_reads_from", default=PRIMARY)


def reading_alias() -> str:
    """The database this request reads from (the primary outside a request)."""
    return _reads_from.get()


@contextmanager
def reads_from(alias: str) -> Iterator[None]:
    token = _reads_from.set(alias)
    try:
        yield
    finally:
        _reads_from.reset(token)


class ReplicaRouter:
    """Writes and migrations to the primary; reads where the request reads.

    A read inside a transaction open on the primary goes to the primary: it must see what that
    transaction wrote (and a row it is about to update must not be a replica's older copy).
    """

    def db_for_read(self, model, **hints) -> str:
        if connections[PRIMARY].in_atomic_block:
            return PRIMARY
        return _reads_from.get()

    def db_for_write(self, model, **hints) -> str:
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the replica holds the primary's rows: an object read there is the same

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == PRIMARY


# --- which database a request reads from ---


class ReplicaReadsMiddleware:
    """Route the request's reads; after a write, remember where the primary's WAL stood."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.reads_from = request_reading_alias(request)
        with reads_from(request.reads_from):
            response = self.get_response(request)
        if request.method not in SAFE_METHODS and request_authenticated(request):
            write_remember(request, response)
        return response


def request_authenticated(request) -> bool:
    """A logged-in user or an API key (DRF sets the request's user to the key): only they
    write, and an anonymous POST leaves no mark to fill the cache with."""
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)


def request_reading_alias(request) -> str:
    """The replica for a GET, unless the user's last write is not there yet or it is down."""
    if request.method not in SAFE_METHODS:
        return PRIMARY
    written = last_write_position(request)
    try:
        if written is None:
            replica_connect()
            return REPLICA
        replayed = replica_replayed_position()
    except DatabaseError as error:
        logger.warning("The replica cannot be read (%s); reading from the primary.", error)
        return PRIMARY
    return REPLICA if replayed is not None and replayed >= written else PRIMARY


def replica_connect() -> None:
    """Connect to the replica, or check that a kept connection still works (what a query's
    cursor does first): a replica gone away is found before the page reads, not during it."""
    replica = connections[REPLICA]
    replica.close_if_health_check_failed()
    replica.ensure_connection()


def replica_replayed_position() -> int | None:
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_last_wal_replay_lsn()::text")
        (position,) = cursor.fetchone()
    return wal_position(position) if position else None


def primary_wal_position() -> int:
    """Where the primary's WAL ends now: past the commit of anything written before."""
    with connections[PRIMARY].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        return wal_position(cursor.fetchone()[0])


def wal_position(lsn: str) -> int:
    """A PostgreSQL LSN ('16/B374D848') as a number that orders like it."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


# --- a user's last write: a cookie for a browser, a cache entry for an API key ---


def api_key_mark(request) -> str | None:
    """The cache key of the request's credentials, when it carries an Authorization header."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header:
        return None
    return "replica-wrote:" + hashlib.sha256(header.encode("latin-1", "replace")).hexdigest()


def last_write_position(request) -> int | None:
    positions = []
    cookie = request.get_signed_cookie(
        WRITE_COOKIE, default=None, salt=WRITE_SALT, max_age=settings.CANARY_REPLICA_WAIT_S
    )
    if cookie and cookie.isdigit():
        positions.append(int(cookie))
    mark = api_key_mark(request)
    if mark:
        stored = cache.get(mark)
        if isinstance(stored, int):
            positions.append(stored)
    return max(positions, default=None)


def write_remember(request, response) -> None:
    """After a request that may have written: its user reads from the primary until the
    replica has replayed this far. Nothing is remembered when the primary cannot answer (no
    write could have happened either)."""
    try:
        position = primary_wal_position()
    except DatabaseError:
        return
    wait_s = settings.CANARY_REPLICA_WAIT_S
    response.set_signed_cookie(
        WRITE_COOKIE,
        str(position),
        salt=WRITE_SALT,
        max_age=wait_s,
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )
    mark = api_key_mark(request)
    if mark:
        cache.set(mark, position, timeout=wait_s)


# --- how far the replica lags: the pages' banner ---


@dataclass(frozen=True)
class ReplicaLag:
    seconds: float  # 0 when it has replayed all the primary sent
    receiving: bool  # False: its connection to the primary is lost
    as_of: datetime | None  # the primary's time of the last transaction replayed

    @property
    def behind(self) -> str:
        """The lag for people, to the second under an hour: '45 s', '4 min 10 s', '2 h 5 min'."""
        seconds = round(self.seconds)
        if seconds < 60:
            return f"{seconds} s"
        if seconds < 3600:
            return f"{seconds // 60} min {seconds % 60} s"
        if seconds < 86400:
            return f"{seconds // 3600} h {seconds % 3600 // 60} min"
        return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


LAG_SQL = """
SELECT pg_last_xact_replay_timestamp(), clock_timestamp(),
    pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn(),
    EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE coalesce(status, 'streaming') = 'streaming')
WHERE pg_is_in_recovery()
"""
_lag_measured: tuple[float, ReplicaLag | None] = (float("-inf"), None)


def replica_lag() -> ReplicaLag | None:
    """How far the replica is behind the primary (None: not a standby, or nothing replayed
    yet), measured at most every LAG_CHECK_EVERY_S in this process.

    A caught-up replica of an idle primary replayed its last transaction long ago but lags by
    nothing: the lag counts only while WAL received is still to replay, or while the replica
    receives nothing (its primary gone), since the last transaction it replayed.
    `pg_stat_wal_receiver` shows its status only to roles with pg_read_all_stats; without it
    a running receiver counts as streaming.
    """
    global _lag_measured
    measured_at, lag = _lag_measured
    if time.monotonic() - measured_at < LAG_CHECK_EVERY_S:
        return lag
    with connections[REPLICA].cursor() as cursor:
        cursor.execute(LAG_SQL)
        row = cursor.fetchone()
    lag = replica_lag_from(*row) if row and row[0] else None
    _lag_measured = (time.monotonic(), lag)
    return lag


def replica_lag_from(replayed_at, now, all_replayed: bool, receiving: bool) -> ReplicaLag:
    seconds = 0.0 if receiving and all_replayed else (now - replayed_at).total_seconds()
    return ReplicaLag(max(seconds, 0.0), receiving, replayed_at)


def replica_lag_context(request) -> dict:
    """`replica_lag` for the pages' banner: set when this page was read from a replica that
    lags by more than CANARY_REPLICA_LAG_WARN_S."""
    if getattr(request, "reads_from", PRIMARY) != REPLICA:
        return {}
    try:
        lag = replica_lag()
    except DatabaseError:
        return {}
    if lag is None or lag.seconds <= settings.CANARY_REPLICA_LAG_WARN_S:
        return {}
    return {"replica_lag": lag}
