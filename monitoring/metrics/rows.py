"""Drill-down to the rows: the predictions and outcomes behind a chart point, filtered,
paged, and streamed out as CSV or Parquet in bounded chunks."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.parquet as pq
from django.db.models import QuerySet

from common.export import csv_stream
from factory.models import MLModel
from monitoring.models import Prediction, RetentionRun

CHUNK_ROWS = 2_000  # rows fetched per round trip and per Parquet row group: memory is O(chunk)
ROW_FIELDS = (
    "prediction_id",
    "timestamp",
    "version__version",
    "segment",
    "prediction",
    "score",
    "label__outcome",
    "label__observed_at",
    "label__delay_s",
    "label__correct",
    "features",
    "label__values",
)
ROW_COLUMNS = (
    "prediction_id",
    "timestamp",
    "version",
    "segment",
    "prediction",
    "score",
    "outcome",
    "observed_at",
    "delay_s",
    "correct",
    "features",
    "values",
)


class RowFilterError(ValueError):
    """A drill-down filter that cannot be applied; the message says which and why."""


@dataclass
class RowFilter:
    start: datetime | None = None
    end: datetime | None = None
    version: str | None = None
    segment: str | None = None
    labelled: bool | None = None
    feature: str = ""
    low: float | None = None
    high: float | None = None
    category: str | None = None


def rows_removed_before(filters: RowFilter) -> datetime | None:
    """When the window reaches back before the raw rows retention kept: the moment before
    which they were removed (their aggregates stay). None when the window is whole."""
    run = RetentionRun.objects.order_by("-raw_removed_before").first()
    if run is None or (filters.start is not None and filters.start >= run.raw_removed_before):
        return None
    return run.raw_removed_before


def rows_select(*, model: MLModel, filters: RowFilter) -> QuerySet:
    """The matching predictions with their labels, oldest first, as dicts of ROW_FIELDS."""
    rows = rows_filtered(model=model, filters=filters)
    return rows.order_by("timestamp", "id").values(*ROW_FIELDS)


def rows_filtered(*, model: MLModel, filters: RowFilter) -> QuerySet:
    """The matching predictions, unordered (the slice that the drill-down shows)."""
    rows = Prediction.objects.filter(model=model)
    if filters.start:
        rows = rows.filter(timestamp__gte=filters.start)
    if filters.end:
        rows = rows.filter(timestamp__lt=filters.end)
    if filters.version:
        rows = rows.filter(version__version=filters.version)
    if filters.segment is not None:
        rows = rows.filter(segment=filters.segment)
    if filters.labelled is not None:
        rows = rows.filter(label__isnull=not filters.labelled)
    return feature_filtered(rows, filters)


def feature_filtered(rows: QuerySet, filters: RowFilter) -> QuerySet:
    has_condition = filters.low is not None or filters.high is not None or filters.category
    if not filters.feature:
        if has_condition:
            raise RowFilterError("a feature range or category needs the feature's name")
        return rows
    key = f"features__{filters.feature}"
    if filters.category is not None and filters.category != "":
        return rows.filter(**{key: filters.category})
    if filters.low is not None:
        rows = rows.filter(**{f"{key}__gte": filters.low})
    if filters.high is not None:
        rows = rows.filter(**{f"{key}__lt": filters.high})
    return rows


def row_values(row: dict) -> list:
    """One row as export cells: JSON objects as text, times in RFC 3339."""
    cells = [row[f] for f in ROW_FIELDS]
    for index, cell in enumerate(cells):
        if isinstance(cell, datetime):
            cells[index] = cell.isoformat()
        elif isinstance(cell, dict | list):
            cells[index] = json.dumps(cell, ensure_ascii=False, sort_keys=True)
    return cells


def rows_csv(rows: QuerySet) -> Iterator[str]:
    return csv_stream(ROW_COLUMNS, (row_values(r) for r in rows.iterator(chunk_size=CHUNK_ROWS)))


PARQUET_SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("timestamp", pa.string()),
        ("version", pa.string()),
        ("segment", pa.string()),
        ("prediction", pa.string()),
        ("score", pa.float64()),
        ("outcome", pa.string()),
        ("observed_at", pa.string()),
        ("delay_s", pa.float64()),
        ("correct", pa.bool_()),
        ("features", pa.string()),
        ("values", pa.string()),
    ]
)


class ChunkSink(io.RawIOBase):
    """A write-only file whose bytes are taken away after each row group."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def rows_parquet(rows: QuerySet) -> Iterator[bytes]:
    """Parquet written one row group per chunk, each yielded as soon as it is written."""
    sink = ChunkSink()
    writer = pq.ParquetWriter(sink, PARQUET_SCHEMA)
    chunk: list[list] = []
    for row in rows.iterator(chunk_size=CHUNK_ROWS):
        chunk.append(row_values(row))
        if len(chunk) == CHUNK_ROWS:
            writer.write_table(parquet_table(chunk))
            chunk = []
            yield sink.take()
    if chunk:
        writer.write_table(parquet_table(chunk))
    writer.close()
    yield sink.take()


def parquet_table(chunk: list[list]) -> pa.Table:
    columns = list(zip(*chunk, strict=True))
    arrays = {name: list(columns[i]) for i, name in enumerate(PARQUET_SCHEMA.names)}
    return pa.Table.from_pydict(arrays, schema=PARQUET_SCHEMA)
