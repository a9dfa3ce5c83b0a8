"""Typed readers for settings from the environment that fail loudly on a bad value."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

POSTGRESQL = "django.db.backends.postgresql"


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {value!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_datetime(name: str, default: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is UTC."""
    value = os.environ.get(name) or default
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be an ISO 8601 date such as 2000-01-01, got {value!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def replica_database(url: str, primary: dict) -> dict:
    """The DATABASES entry of DATABASE_REPLICA_URL, a streaming replica of the primary's.

    Its connection is checked before a request reuses it and gives up connecting after a few
    seconds, so that a replica gone away sends reads to the primary instead of failing them;
    tests give it no database of its own (it mirrors the primary's).
    """
    replica = dj_database_url.parse(
        url, conn_max_age=primary["CONN_MAX_AGE"], conn_health_checks=True
    )
    if primary["ENGINE"] != POSTGRESQL or replica["ENGINE"] != POSTGRESQL:
        raise ImproperlyConfigured(
            "DATABASE_REPLICA_URL needs PostgreSQL, in it and in DATABASE_URL: a streaming "
            f"replica of the primary (got {replica['ENGINE']} beside {primary['ENGINE']})."
        )
    replica.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    replica["TEST"] = {"MIRROR": "default"}
    return replica


def secret_key_kept(path: Path) -> str:
    """The embedded mode's own secret key: made once, kept in `path` for its owner alone.

    Concurrent first starts (several web workers) agree on one key: each writes a candidate
    aside and links it into place, and the first link wins.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(50))
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    return path.read_text().strip()
