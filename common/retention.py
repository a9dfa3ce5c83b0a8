"""How long raw rows live: the horizon every layer agrees on.

Hours before the raw horizon are sealed: their aggregates are final, and a prediction that
falls in one is refused as expired. Raw rows are removed a calendar month at a time, once the
whole month lies before the horizon, so rows between the removal boundary and the horizon
linger (at most a month) in sealed hours without changing anything.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings


def raw_horizon(now: datetime) -> datetime:
    """The first unsealed hour: now minus CANARY_RAW_RETENTION_DAYS, down to the hour."""
    moment = now - timedelta(days=settings.CANARY_RAW_RETENTION_DAYS)
    return moment.replace(minute=0, second=0, microsecond=0)


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_after(month: datetime) -> datetime:
    """The first moment of the next calendar month."""
    if month.month == 12:
        return month.replace(year=month.year + 1, month=1)
    return month.replace(month=month.month + 1)


def raw_removal_boundary(now: datetime) -> datetime:
    """Raw rows before this moment are removed: the start of the horizon's month."""
    return month_start(raw_horizon(now))


def hours_unsealed(hours: list[datetime], now: datetime) -> list[datetime]:
    """The hours whose aggregates may still be rewritten."""
    horizon = raw_horizon(now)
    return [hour for hour in hours if hour >= horizon]
