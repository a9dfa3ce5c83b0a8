"""How deep JSON text nests, measured on the text before parsing it.

Python's JSON decoder recurses once per level and fails with RecursionError near a thousand
levels, so nesting is bounded by reading the brackets first: fast for any body, and exact
whatever the strings hold.
"""

from __future__ import annotations

import re

import numpy as np

# A JSON string, escapes included (unrolled so that long strings do not backtrack).
STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
OPENERS = np.array([ord("["), ord("{")], np.uint32)
CLOSERS = np.array([ord("]"), ord("}")], np.uint32)


def brackets_at_most(text: str, limit: int, start: int = 0, end: int | None = None) -> bool:
    """True when the text holds at most `limit` opening brackets: nesting cannot exceed it."""
    end = len(text) if end is None else end
    return text.count("[", start, end) + text.count("{", start, end) <= limit


def nesting(text: str) -> np.ndarray:
    """The nesting level after each character, strings blanked so their brackets do not count."""
    blanked = STRING.sub(lambda match: " " * len(match[0]), text)
    codes = np.frombuffer(blanked.encode("utf-32-le", "surrogatepass"), np.uint32)
    steps = np.isin(codes, OPENERS).astype(np.int32) - np.isin(codes, CLOSERS)
    return np.cumsum(steps)


def json_too_deep(text: str, limit: int) -> int | None:
    """Where the text first nests deeper than `limit` (a character index), or None."""
    if brackets_at_most(text, limit):
        return None
    # Strings deleted rather than blanked: one C call, enough to say whether it is too deep.
    codes = np.frombuffer(STRING.sub("", text).encode("utf-32-le", "surrogatepass"), np.uint32)
    steps = np.isin(codes, OPENERS).astype(np.int32) - np.isin(codes, CLOSERS)
    if np.cumsum(steps).max(initial=0) <= limit:
        return None
    return int(np.argmax(nesting(text) > limit))


def json_value_end(text: str, start: int) -> int | None:
    """The end of the array or object that opens at `start`, or None if the text ends first."""
    levels = nesting(text[start:])
    closed = np.flatnonzero(levels == 0)
    return start + int(closed[0]) + 1 if closed.size else None
