"""The rules a value obeys before it is stored, one place for JSON, NDJSON, CSV and Parquet.

A value that passes cannot break a job later. Its timestamp lies between a floor and now plus
a tolerated skew, so hour arithmetic never leaves the calendar; its numbers are finite and small
enough that the aggregates' sums of squares (float8) stay finite; its text fits its column and
encodes as UTF-8 without NUL. Parsers bound a record's size and nesting before decoding it.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

# Quarantine codes, as docs/api.md lists them.
REQUIRED = "required"  # a required field is missing or empty
INVALID = "invalid"  # a wrong type or format
TOO_LONG = "too_long"  # text over its column's size (labels after canonicalisation)
OUT_OF_RANGE = "out_of_range"  # a timestamp outside the window, a number beyond MAX_NUMBER
NOT_FINITE = "not_finite"  # NaN or an infinity
BAD_TEXT = "invalid_text"  # a NUL character or a lone surrogate
TOO_DEEP = "too_deep"  # nested deeper than MAX_DEPTH
EXPIRED = "expired"  # a prediction older than the raw retention horizon (its hour is sealed)

MAX_ID_CHARS = 200
MAX_TEXT_CHARS = 200
MAX_VERSION_CHARS = 100
MAX_NAME_CHARS = 100
MAX_DEPTH = 32  # a record nests two levels (record, features); the rest is room
MAX_RECORD_CHARS = 1_000_000  # a single JSON record or NDJSON line longer than this is refused
MAX_INT_DIGITS = 4_000  # longer integers are refused while parsing, before Python's own limit
# Squares of stored numbers are summed in float8 (sums of squares for variances): 1e150 squared
# leaves room for a billion of them below float8's 1.8e308.
MAX_NUMBER = 1e150
SCORES_SUM_TOLERANCE = 1e-3  # multiclass scores sum to 1 within this (a probability vector)

# RFC 3339 (section 5.6, with its note's space for T): offsets to +-23:59, seconds to 60.
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
NO_OFFSET = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
)
LEAP_SECOND = 17  # where the seconds start: "YYYY-MM-DDTHH:MM:SS"
# PostgreSQL text cannot hold NUL, so a NUL is refused here rather than fail the whole request.
NUL_MESSAGE = "{field} must not contain NUL (\\u0000) characters"


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    field: str
    message: str


def printable(text: str) -> str:
    """Text that can be shown, sent as JSON and stored: lone surrogates as their \\u escapes."""
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def encodable(text: str) -> bool:
    """Valid Unicode: encodable as UTF-8 (no lone surrogate). O(1) for ASCII text."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_fits(value: str, limit: int) -> bool:
    """Storable text of at most `limit` characters (the fast path's question)."""
    return len(value) <= limit and "\x00" not in value and encodable(value)


def text_ok(value, limit: int) -> bool:
    """A storable, non-empty text."""
    return type(value) is str and value != "" and text_fits(value, limit)


def text_problem(value: str, field: str, limit: int) -> Problem | None:
    shown = printable(field)
    if len(value) > limit:
        return Problem(TOO_LONG, shown, f"{shown} is longer than {limit} characters")
    if "\x00" in value:
        return Problem(BAD_TEXT, shown, NUL_MESSAGE.format(field=shown))
    if not encodable(value):
        message = f"{shown} is not valid Unicode: it holds a lone surrogate (\\ud800 to \\udfff)"
        return Problem(BAD_TEXT, shown, message)
    return None


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def number_ok(value) -> bool:
    """A finite int or float within +-MAX_NUMBER (booleans are numbers here too)."""
    return -MAX_NUMBER <= value <= MAX_NUMBER  # NaN compares false


def number_problem(value: int | float, field: str) -> Problem | None:
    if number_ok(value):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return Problem(NOT_FINITE, field, f"{field} must be a finite number")
    return Problem(OUT_OF_RANGE, field, f"{field} must be between -1e150 and 1e150")


def label_problem(label: str, field: str) -> Problem | None:
    """A class label's canonical text must fit its column (1e200 is 201 digits as a label)."""
    if len(label) > MAX_TEXT_CHARS:
        return Problem(
            TOO_LONG, field, f"{field} is longer than {MAX_TEXT_CHARS} characters as a label"
        )
    return None


BOUNDS: dict = {}  # the bounds, kept for a second: one clock and settings read per second


@receiver(setting_changed)
def bounds_forget(*, setting: str, **kwargs) -> None:
    if setting in ("CANARY_TIMESTAMP_FLOOR", "CANARY_FUTURE_SKEW_S"):
        BOUNDS.clear()


def timestamp_bounds() -> tuple[datetime, datetime]:
    """The oldest and the newest event time accepted now."""
    second = int(time.time())  # a clock that moves back (frozen in a test) is followed too
    if BOUNDS.get("second") != second:
        skew = timedelta(seconds=settings.CANARY_FUTURE_SKEW_S)
        BOUNDS["floor"] = settings.CANARY_TIMESTAMP_FLOOR
        BOUNDS["ceiling"] = datetime.fromtimestamp(second + 1, UTC) + skew
        BOUNDS["second"] = second
    return BOUNDS["floor"], BOUNDS["ceiling"]


def timestamp_check(value, field: str) -> datetime | Problem:
    """The UTC moment an RFC 3339 text names, or the problem with it."""
    if value is None:
        return Problem(REQUIRED, field, f"{field} is required")
    if not isinstance(value, str):
        return Problem(INVALID, field, f"{field} must be an RFC 3339 string")
    if RFC3339.fullmatch(value) is None:
        if NO_OFFSET.fullmatch(value):
            return timestamp_problem(INVALID, field, value, "has no UTC offset (add Z or +00:00)")
        return timestamp_problem(INVALID, field, value, "is not RFC 3339")
    leap = value[LEAP_SECOND : LEAP_SECOND + 2] == "60"
    text = f"{value[:LEAP_SECOND]}59{value[LEAP_SECOND + 2 :]}" if leap else value
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        return timestamp_problem(INVALID, field, value, "names no such date or time")
    floor, ceiling = timestamp_bounds()
    # Compared before any conversion: astimezone() overflows near years 1 and 9999.
    if not floor <= moment <= ceiling:
        window = (
            f"is out of range: event times lie between {floor.isoformat()} "
            f"and now plus {settings.CANARY_FUTURE_SKEW_S} s"
        )
        return timestamp_problem(OUT_OF_RANGE, field, value, window)
    moment = moment.astimezone(UTC)
    return moment + timedelta(seconds=1) if leap else moment


def timestamp_problem(code: str, field: str, value: str, reason: str) -> Problem:
    return Problem(code, field, f"{field} {printable(value[:40])!r} {reason}")
