"""Numbers as answers carry them: JSON has no NaN and no infinity."""

from __future__ import annotations

import math


def finite(value: float | None) -> float | None:
    """The value, or None where it is missing, NaN or infinite (an interval of one row, a
    constant feature's distance, a p-value that underflowed)."""
    return value if value is not None and math.isfinite(value) else None


def finite_parse(text: str, name: str) -> float:
    """A finite number in float range from a query parameter; ValueError says what is wrong."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} {text[:60]!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} {text[:60]!r} must be a finite number")
    return value
