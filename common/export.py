"""CSV for downloads that people open in spreadsheets."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """Spreadsheets run a text cell that starts like a formula; a leading quote disarms it."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class Echo:
    """A file-like whose write() returns the line, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def csv_stream(
    header: Iterable[str], rows: Iterable[list], *, lineterminator: str = "\r\n"
) -> Iterator[str]:
    writer = csv.writer(Echo(), lineterminator=lineterminator)
    yield writer.writerow([csv_cell(h) for h in header])
    for row in rows:
        yield writer.writerow([csv_cell(cell) for cell in row])
