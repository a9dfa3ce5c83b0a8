"""Hour, day and week windows: where each starts and which a span covers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models.functions import TruncDay, TruncWeek

TRUNC = {"day": TruncDay, "week": TruncWeek}


WINDOW = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}


def window_start(moment: datetime, granularity: str) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    if granularity == "hour":
        return hour
    day = hour.replace(hour=0)
    if granularity == "day":
        return day
    return day - timedelta(days=day.weekday())  # weeks start on Monday


def windows_between(first: datetime, last: datetime, granularity: str) -> Iterator[datetime]:
    """The start of every window from the one holding `first` to the one holding `last`."""
    windows_span_check(first, last, granularity)
    moment, step = window_start(first, granularity), WINDOW[granularity]
    while moment <= last:
        yield moment
        moment += step


def window_check(granularity: str, start: datetime | None, end: datetime | None) -> None:
    if granularity not in WINDOW:
        raise MetricError("granularity must be hour, day or week")
    if start and end and start >= end:
        raise MetricError("start must be before end")


def windows_span_check(first: datetime, last: datetime, granularity: str) -> None:
    """A series spans at most CANARY_MAX_POINTS windows; MetricError names the limit."""
    step = WINDOW[granularity]
    count = (window_start(last, granularity) - window_start(first, granularity)) // step + 1
    if count > settings.CANARY_MAX_POINTS:
        raise MetricError(
            f"From {first.isoformat()} to {last.isoformat()} is {count} {granularity} windows, "
            f"more than CANARY_MAX_POINTS ({settings.CANARY_MAX_POINTS}): narrow start and end "
            "or choose a coarser granularity."
        )


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MetricError(ValueError):
    """A metric, window or filter the model cannot answer; the message says why."""
