"""Time helpers every layer shares: hours, days and UTC."""

from __future__ import annotations

import re
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
    return period_ranges(hours, hour_after)


def day_ranges(days: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Contiguous [start, end) ranges covering the given days (their starts)."""
    return period_ranges(days, lambda day: day + DAY)


def period_ranges(starts: list[datetime], after) -> list[tuple[datetime, datetime]]:
    """Contiguous [start, end) ranges covering periods given by their starts; ``after`` is a
    period's end."""
    ranges: list[list[datetime]] = []
    for start in sorted(starts):
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = after(start)
        else:
            ranges.append([start, after(start)])
    return [(start, end) for start, end in ranges]


def day_floor(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def day_ceil(moment: datetime) -> datetime:
    """The first midnight at or after the moment: where the whole days from it begin."""
    floor = day_floor(moment)
    return floor if floor == moment else floor + DAY


def as_utc(value) -> datetime:
    if isinstance(value, str):
        value = parse_datetime(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# RFC 3339's date-time: seconds required, the offset Z or +hh:mm (hours 00-23).
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?"
    r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)"
)
# A query bound is an instant Canary can hold data for: records start in 2000 at the earliest
# (CANARY_TIMESTAMP_FLOOR), and bounds far outside would only overflow window arithmetic.
TIME_BOUND_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_BOUND_MAX = datetime(3000, 1, 1, tzinfo=UTC)


def time_parse(text: str, name: str) -> datetime:
    """An RFC 3339 timestamp with its UTC offset, in UTC, from 1970 to 2999.

    ValueError says what is wrong. The answer is in UTC whatever the offset, so the database
    never sees an offset it cannot hold (PostgreSQL stops at 15:59).
    """
    shown = repr(text[:60])
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{name} {shown} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise ValueError(f"{name} {shown} has no UTC offset (add Z or +00:00)")
    if not RFC3339.fullmatch(text):
        raise ValueError(f"{name} {shown} is not an RFC 3339 timestamp (2026-03-01T12:00:00Z)")
    return time_bounded(value, name, shown)


def time_bounded(value: datetime, name: str, shown: str) -> datetime:
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        value = None
    if value is None or not TIME_BOUND_MIN <= value < TIME_BOUND_MAX:
        raise ValueError(f"{name} {shown} is outside the years 1970 to 2999 (UTC)")
    return value


DURATION_UNITS = (("d", 86400), ("h", 3600), ("min", 60), ("s", 1))


def duration_words(seconds: float) -> str:
    """A duration as a person reads it, in its two largest units, cut (not rounded) to the
    smaller one: 538998 s reads "6 d 5 h"; then "3 h 20 min", "45 s", "0.4 s"."""
    sign, left = ("-" if seconds < 0 else ""), abs(seconds)
    if left < 1:
        return f"{sign}{left:.1g} s"
    for index, (unit, size) in enumerate(DURATION_UNITS[:-1]):
        if left >= size:
            smaller, small_size = DURATION_UNITS[index + 1]
            whole, rest = divmod(int(left // small_size) * small_size, size)
            parts = [f"{whole:.0f} {unit}"] + (
                [f"{rest // small_size:.0f} {smaller}"] if rest else []
            )
            return sign + " ".join(parts)
    return f"{sign}{int(left)} s"
