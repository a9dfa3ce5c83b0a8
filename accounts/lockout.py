"""Login throttling: a username tried from one address is locked out after too many failures.

Counted in the shared cache (Redis in production), per username and address together, so a
guessing client locks itself out without locking the real user out from elsewhere.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

logger = logging.getLogger("canary.login")


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or the proxy's last X-Forwarded-For entry behind one."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.CANARY_BEHIND_PROXY and forwarded:
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


def lockout_key(username: str, address: str) -> str:
    digest = hashlib.sha256(f"{username.casefold()}\0{address}".encode()).hexdigest()[:32]
    return f"login:{digest}"


def lockout_duration() -> timedelta:
    return timedelta(minutes=settings.CANARY_LOGIN_LOCKOUT_MINUTES)


def login_locked_until(*, username: str, address: str) -> datetime | None:
    """When the lockout of this username from this address ends; None when it is not locked."""
    state = cache_get(lockout_key(username, address))
    until = state.get("locked_until")
    return until if until is not None and until > timezone.now() else None


def login_failure_record(*, username: str, address: str) -> datetime | None:
    """Count a failed login; returns the end of the lockout it starts, if it starts one."""
    key, now = lockout_key(username, address), timezone.now()
    state = cache_get(key)
    if state.get("window_end") is None or state["window_end"] <= now:
        state = {"failures": 0, "window_end": now + lockout_duration()}
    state["failures"] += 1
    if state["failures"] >= settings.CANARY_LOGIN_FAILURES:
        state = {"failures": 0, "window_end": None, "locked_until": now + lockout_duration()}
        logger.warning(
            "login locked: username=%r address=%s failures=%d until=%s",
            username,
            address,
            settings.CANARY_LOGIN_FAILURES,
            state["locked_until"].isoformat(),
        )
    cache_set(key, state)
    return state.get("locked_until")


def login_success_record(*, username: str, address: str) -> None:
    cache_delete(lockout_key(username, address))


def cache_get(key: str) -> dict:
    return cache.get(key) or {}


def cache_set(key: str, state: dict) -> None:
    # The cache forgets the entry a little after the lockout ends; the stored times decide.
    cache.set(key, state, timeout=lockout_duration().total_seconds() + 60)


def cache_delete(key: str) -> None:
    cache.delete(key)
