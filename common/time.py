"""Time helpers every layer shares: hours, days and UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def hour_after(hour: datetime) -> datetime:
    """The next hour; the calendar's last hour (9999-12-31T23:00) ends at its last moment
    instead of overflowing."""
    try:
        return hour + HOUR
    except OverflowError:
        return datetime.max.replace(tzinfo=hour.tzinfo)


def hour_ranges(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous [start, end) ranges covering the given hours."""
    ranges: list[list[datetime]] = []
    for hour in sorted(hours):
        if ranges and ranges[-1][1] == hour:
            ranges[-1][1] = hour_after(hour)
        else:
            ranges.append([hour, hour_after(hour)])
    return [(start, end) for start, end in ranges]


def day_floor(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def as_utc(value) -> datetime:
    if isinstance(value, str):
        value = parse_datetime(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def time_parse(text: str, name: str) -> datetime:
    """An RFC 3339 timestamp with its UTC offset; ValueError says what is wrong with it."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise ValueError(f"{name} {text!r} has no UTC offset (add Z or +00:00)")
    return value
