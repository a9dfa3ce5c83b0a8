"""Request bodies to records: JSON, NDJSON, CSV and Parquet.

Bodies are read as streams and records come out one by one, so memory is bounded by the batch
the caller takes, not by the body. A body that cannot be read raises BodyError, possibly after
records were already yielded (the caller's transaction then stores nothing). A single unreadable
line of NDJSON or CSV, or a record nested deeper than MAX_DEPTH, becomes an `Unreadable` record,
rejected and quarantined on its own with its text as sent.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from common.jsontext import brackets_at_most, json_too_deep, json_value_end
from monitoring.ingest.columnar import (
    SCORES_PREFIX,
    ColumnarFallback,
    columnar_chunks,
    columnar_usable,
    csv_header,
)
from monitoring.ingest.columnar_json import json_chunks
from monitoring.ingest.validate import (
    INVALID,
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_RECORD_CHARS,
    TOO_DEEP,
    TOO_LONG,
)

PREDICTION_COLUMNS = (
    "prediction_id",
    "timestamp",
    "model_version",
    "prediction",
    "score",
    "segment",
)
OUTCOME_COLUMNS = ("prediction_id", "observed_at", "outcome")
REQUIRED_COLUMNS = {
    "predictions": ("prediction_id", "timestamp", "model_version", "prediction"),
    "outcomes": ("prediction_id", "observed_at"),
}
TEXT_COLUMNS = {"prediction_id", "timestamp", "model_version", "segment", "observed_at"}


class BodyError(Exception):
    """The whole body is unreadable; the message says where."""


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A record that cannot be decoded (or must not be): quarantined with its text as sent."""

    raw: str
    message: str
    code: str = INVALID


def reject_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


def bounded_int(text: str) -> int:
    """A JSON integer; one too long to read is refused by name, before Python's own limit."""
    if len(text) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text):,} digits is out of range")
    return int(text)


def json_loads(text: str):
    return json.loads(text, parse_constant=reject_constant, parse_int=bounded_int)


READ_CHARS = 1 << 18  # text read from the body at a time
DECODER = json.JSONDecoder(parse_constant=reject_constant, parse_int=bounded_int)
WHITESPACE = re.compile(r"[ \t\n\r]*")
TOO_DEEP_MESSAGE = "{what} nests deeper than {limit} levels"


def too_deep(text: str, what: str, start: int = 0, end: int | None = None) -> Unreadable | None:
    """An Unreadable for JSON text nested deeper than MAX_DEPTH, None for the usual record."""
    if brackets_at_most(text, MAX_DEPTH, start, end):
        return None
    raw = text[start:end]
    if json_too_deep(raw, MAX_DEPTH) is None:
        return None
    return Unreadable(raw, TOO_DEEP_MESSAGE.format(what=what, limit=MAX_DEPTH), TOO_DEEP)


def text_stream(stream: BinaryIO) -> io.TextIOWrapper:
    """The body as text, decoded as it is read; invalid UTF-8 raises BodyError where it is."""
    return io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline="")


@contextmanager
def body_errors():
    """Turn decoding failures met while streaming into BodyError."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise BodyError(f"the body is not valid UTF-8 ({error.reason})") from None


class JsonCursor:
    """A window on the JSON text that refills from the stream as values are decoded."""

    def __init__(self, text: io.TextIOBase):
        self.text = text
        self.buffer = ""
        self.pos = 0
        self.offset = 0  # characters dropped before `buffer`
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        more = self.text.read(READ_CHARS)
        if not more:
            self.eof = True
            return False
        self.offset += self.pos
        self.buffer = self.buffer[self.pos :] + more
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-blank character ('' at the end of the body)."""
        while True:
            self.pos = WHITESPACE.match(self.buffer, self.pos).end()
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self.fill():
                return ""

    def expect(self, allowed: str, where: str) -> str:
        char = self.peek()
        if not char:
            raise BodyError(f"the body is not valid JSON: it ends inside {where}")
        if char not in allowed:
            raise BodyError(
                f"the body is not valid JSON: expected {' or '.join(allowed)} in {where} "
                f"at character {self.offset + self.pos}, found {char!r}"
            )
        self.pos += 1
        return char

    def value(self):
        """Decode one JSON value; a value touching the buffer's end may be cut, so read on.

        A value nested too deep comes back as an Unreadable, its text kept whole.
        """
        self.peek()
        while True:
            try:
                value, end = DECODER.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as error:
                if len(self.buffer) - self.pos < MAX_RECORD_CHARS and self.fill():
                    continue
                raise BodyError(self.decode_error(error)) from None
            except RecursionError:
                return self.too_deep_value()
            except ValueError as error:  # NaN, Infinity, an integer of thousands of digits
                raise BodyError(f"the body is not valid JSON: {error}") from None
            if end == len(self.buffer) and self.fill():
                continue
            start, self.pos = self.pos, end
            return too_deep(self.buffer, self.where(start), start, end) or value

    def where(self, start: int) -> str:
        return f"the record at character {self.offset + start}"

    def decode_error(self, error: json.JSONDecodeError) -> str:
        cut = error.msg.startswith("Unterminated") or error.pos >= len(self.buffer) - 1
        if cut and len(self.buffer) - self.pos >= MAX_RECORD_CHARS:
            return (
                f"{self.where(self.pos)} is longer than {MAX_RECORD_CHARS:,} characters, "
                "the most a record may have"
            )
        return f"the body is not valid JSON: {error.msg} (character {self.offset + error.pos})"

    def too_deep_value(self) -> Unreadable:
        """Skip a value too deep for the decoder to its end, keeping its text."""
        while (end := json_value_end(self.buffer, self.pos)) is None:
            if len(self.buffer) - self.pos >= MAX_RECORD_CHARS or not self.fill():
                where = self.where(self.pos)
                raise BodyError(
                    f"{TOO_DEEP_MESSAGE.format(what=where, limit=MAX_DEPTH)} and is not "
                    f"closed by character {self.offset + len(self.buffer)}"
                )
        start, self.pos = self.pos, end
        message = TOO_DEEP_MESSAGE.format(what=self.where(start), limit=MAX_DEPTH)
        return Unreadable(self.buffer[start:end], message, TOO_DEEP)


def json_array(cursor: JsonCursor) -> Iterator:
    cursor.expect("[", "the records")
    if cursor.peek() == "]":
        cursor.pos += 1
        return
    while True:
        yield cursor.value()
        if cursor.expect(",]", "the records array") == "]":
            return


def json_records(cursor: JsonCursor) -> Iterator:
    """The records of `{"records": [...]}`, skipping any other member."""
    cursor.expect("{", "the body")
    found = False
    if cursor.peek() == "}":
        cursor.pos += 1
    else:
        while True:
            key = cursor.value()
            cursor.expect(":", "the body object")
            if key == "records" and cursor.peek() == "[":
                found = True
                yield from json_array(cursor)
            else:
                cursor.value()
            if cursor.expect(",}", "the body object") == "}":
                break
    if not found:
        raise BodyError('the body must be {"records": [...]} or an array of records')


def parse_json(stream: BinaryIO) -> Iterator:
    """Records one by one from a JSON body, with memory bounded by one record."""
    with body_errors():
        cursor = JsonCursor(text_stream(stream))
        first = cursor.peek()
        if first == "[":
            yield from json_array(cursor)
        elif first == "{":
            yield from json_records(cursor)
        else:
            raise BodyError('the body must be {"records": [...]} or an array of records')
        if cursor.peek():
            raise BodyError(
                f"the body is not valid JSON: extra data at character {cursor.offset + cursor.pos}"
            )


def parse_ndjson(stream: BinaryIO) -> Iterator:
    with body_errors():
        for number, line in enumerate(text_stream(stream), start=1):
            if len(line) > MAX_RECORD_CHARS:
                raise BodyError(f"line {number} is longer than {MAX_RECORD_CHARS:,} characters")
            if not line.strip():
                continue
            yield ndjson_record(line.rstrip("\r\n"), number)


def ndjson_record(line: str, number: int):
    deep = too_deep(line, f"line {number}")
    if deep is not None:
        return deep
    try:
        return json_loads(line)
    except ValueError as error:
        return Unreadable(line, f"line {number} is not valid JSON: {error}")


def cell_value(text: str):
    """A CSV cell: a number if it parses as one, empty is null, true/false are booleans."""
    if text == "":
        return None
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    if number != number or number in (float("inf"), float("-inf")):
        return text  # NaN and Infinity stay text, so validation rejects them by name.
    return int(text) if text.lstrip("+-").isdigit() else number


def check_columns(columns: list[str], kind: str) -> None:
    missing = [name for name in REQUIRED_COLUMNS[kind] if name not in columns]
    if missing:
        raise BodyError(f"missing column(s): {', '.join(missing)}")


def tabular_record(row: dict, kind: str) -> dict:
    """A flat row (CSV or Parquet) to the record shape of the JSON API: a prediction's
    `score:CLASS` cells make its `scores` (empty cells left out), the other columns its
    features."""
    own = PREDICTION_COLUMNS if kind == "predictions" else OUTCOME_COLUMNS
    record = {name: row[name] for name in own if row.get(name) is not None}
    extra = {name: value for name, value in row.items() if name not in own}
    if kind == "predictions":
        scores = {
            name[len(SCORES_PREFIX) :]: extra.pop(name)
            for name in [name for name in extra if name.startswith(SCORES_PREFIX)]
        }
        scores = {name: value for name, value in scores.items() if value is not None}
        if scores:
            record["scores"] = scores
    if extra:
        record["features" if kind == "predictions" else "values"] = extra
    return record


def parse_csv(stream: BinaryIO, kind: str) -> Iterator[dict]:
    with body_errors():
        reader = csv.reader(text_stream(stream))
        try:
            yield from csv_records(reader, kind)
        except csv.Error as error:
            raise BodyError(
                f"the CSV body cannot be read at line {reader.line_num}: {error}"
            ) from None


def csv_records(reader, kind: str) -> Iterator[dict]:
    header = next(reader, None)
    if not header:
        raise BodyError("the CSV body has no header row")
    check_columns(header, kind)
    text_columns = [name in TEXT_COLUMNS for name in header]
    width = len(header)
    for cells in reader:
        if not cells:
            continue
        if len(cells) != width:
            yield Unreadable(
                ",".join(cells),
                f"line {reader.line_num} has {len(cells)} cells, the header has {width}",
            )
            continue
        row = {
            name: (cell or None) if is_text else cell_value(cell)
            for name, is_text, cell in zip(header, text_columns, cells, strict=True)
        }
        yield tabular_record(row, kind)


def csv_cells_record(cells: dict, kind: str) -> dict:
    """One row of text cells (name to text) typed as the CSV rules say."""
    row = {
        name: (cell or None) if name in TEXT_COLUMNS else cell_value(cell)
        for name, cell in cells.items()
    }
    return tabular_record(row, kind)


SPOOL_MEMORY_BYTES = 16 * 1024 * 1024  # Parquet needs its footer first: larger bodies go to disk
PARQUET_BATCH_ROWS = 10_000
# The most one column of one row group may decompress to: Arrow decompresses a column chunk's
# pages whole, so a tiny body of a highly compressible cell would otherwise take the worker's
# memory. 100,000 records (CANARY_MAX_RECORDS) of 640-byte cells are under it.
MAX_COLUMN_CHUNK_BYTES = 64 * 1024 * 1024
MAX_CELL_BYTES = 4 * MAX_RECORD_CHARS  # UTF-8 takes at most 4 bytes a character


def parse_parquet(stream: BinaryIO, kind: str) -> Iterator:
    """Records row group by row group, in batches; a row group with a column that would
    decompress past its rows' limit is not read, its rows quarantined (Unreadable)."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        shutil.copyfileobj(stream, spool, 1 << 20)
        spool.seek(0)
        try:
            parquet = pq.ParquetFile(spool, pre_buffer=False, buffer_size=1 << 20)
        except (pa.ArrowException, OSError) as error:
            raise BodyError(f"the body is not a readable Parquet file: {error}") from None
        check_columns(parquet.schema_arrow.names, kind)
        first_row = 0
        for group in range(parquet.metadata.num_row_groups):
            metadata = parquet.metadata.row_group(group)
            refused = oversized_column_message(metadata, group)
            if refused is None:
                yield from row_group_records(parquet, group, kind)
            else:
                for row in range(first_row, first_row + metadata.num_rows):
                    yield Unreadable(f"(Parquet row {row}, not read)", refused, TOO_LONG)
            first_row += metadata.num_rows


def oversized_column_message(metadata, group: int) -> str | None:
    """Why a row group is not read, from its metadata alone; None when it may be."""
    limit = min(metadata.num_rows * MAX_CELL_BYTES, MAX_COLUMN_CHUNK_BYTES)
    for index in range(metadata.num_columns):
        column = metadata.column(index)
        if column.total_uncompressed_size > limit:
            return (
                f"column {column.path_in_schema!r} of Parquet row group {group} decompresses to "
                f"{column.total_uncompressed_size:,} bytes, more than the {limit:,} its "
                f"{metadata.num_rows:,} rows may hold; the row group is not read"
            )
    return None


def row_group_records(parquet: pq.ParquetFile, group: int, kind: str) -> Iterator[dict]:
    batches = parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[group])
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as error:
            raise BodyError(f"the Parquet body cannot be read: {error}") from None
        if batch is None:
            return
        for row in batch_rows(batch):
            yield tabular_record(row, kind)


def batch_rows(batch) -> list[dict]:
    """A Parquet batch's rows as Python values that cannot fail to convert."""
    names = batch.schema.names
    columns = [column_values(column) for column in batch.columns]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def column_values(column) -> list:
    """Times as RFC 3339 text (Python's datetime ends with year 9999, Arrow's does not);
    text that is not UTF-8 with its bad bytes as lone surrogates, which validation refuses."""
    kind = column.type
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        column = column.cast(pa.timestamp(kind.unit, "UTC")).cast(pa.string())
    elif pa.types.is_temporal(kind):
        column = column.cast(pa.string())
    try:
        return column.to_pylist()
    except UnicodeDecodeError:
        raw = column.cast(pa.large_binary()).to_pylist()
        return [None if cell is None else cell.decode("utf-8", "surrogateescape") for cell in raw]


MEDIA_TYPES = (
    "application/json",
    "application/x-ndjson",
    "text/csv",
    "application/vnd.apache.parquet",
)


class SpooledPredictions:
    """A body of predictions, spooled so that it can be read column-wise or record-wise.

    Iterating gives records; `chunks()` gives column-wise blocks (ColumnarChunk) and raises
    ColumnarFallback when the body is not regular enough, after which iterating starts over.
    """

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        self.spool = None
        self.max_records: int | None = None

    def spooled(self):
        if self.spool is None:
            self.spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
            shutil.copyfileobj(self.stream, self.spool, 1 << 20)
        self.spool.seek(0)
        return self.spool

    def __iter__(self) -> Iterator:
        records = self.records(self.spooled())
        return records_counted(records, self.max_records) if self.max_records else records

    def chunks(self) -> Iterator:
        count = 0
        for chunk in self.columnar(self.spooled()):
            count += len(chunk)
            if self.max_records and count > self.max_records:
                raise RecordLimitExceeded(self.max_records)
            yield chunk

    def records(self, spool: BinaryIO) -> Iterator:
        raise NotImplementedError

    def columnar(self, spool: BinaryIO) -> Iterator:
        raise NotImplementedError


class CsvPredictions(SpooledPredictions):
    """A CSV body of predictions: columnar.py reads it column-wise."""

    def records(self, spool: BinaryIO) -> Iterator:
        return parse_csv(spool, "predictions")

    def columnar(self, spool: BinaryIO) -> Iterator:
        try:
            header = csv_header(spool)
        except UnicodeDecodeError:
            raise ColumnarFallback("header") from None
        if not header or not columnar_usable(header):
            raise ColumnarFallback("header")
        return columnar_chunks(spool, header, self.cell_record)

    @staticmethod
    def cell_record(cells: dict) -> dict:
        return csv_cells_record(cells, "predictions")


class JsonPredictions(SpooledPredictions):
    """A JSON or NDJSON body of predictions: columnar_json.py reads it column-wise."""

    def __init__(self, stream: BinaryIO, *, ndjson: bool):
        super().__init__(stream)
        self.ndjson = ndjson

    def records(self, spool: BinaryIO) -> Iterator:
        return parse_ndjson(spool) if self.ndjson else parse_json(spool)

    def columnar(self, spool: BinaryIO) -> Iterator:
        return json_chunks(spool, ndjson=self.ndjson, decode=json_loads)


def parse_stream(stream: BinaryIO, media_type: str, kind: str) -> Iterator:
    """Records from a body read as a stream; BodyError may come at any record."""
    if kind == "predictions":
        if media_type == "text/csv":
            return CsvPredictions(stream)
        if media_type in ("application/json", "application/x-ndjson"):
            return JsonPredictions(stream, ndjson=media_type == "application/x-ndjson")
    if media_type == "application/json":
        return parse_json(stream)
    if media_type == "application/x-ndjson":
        return parse_ndjson(stream)
    if media_type == "text/csv":
        return parse_csv(stream, kind)
    if media_type == "application/vnd.apache.parquet":
        return parse_parquet(stream, kind)
    raise ValueError(media_type)


def parse_body(body: bytes, media_type: str, kind: str) -> Iterator:
    return parse_stream(io.BytesIO(body), media_type, kind)


class BodyTooLarge(Exception):
    """More bytes than the upload limit were read."""


class RecordLimitExceeded(Exception):
    """More records than one request may carry."""


class LimitedBody(io.RawIOBase):
    """A request body read in chunks, refusing to read past `limit_bytes`."""

    def __init__(self, source, limit_bytes: int):
        self.source = source
        self.limit_bytes = limit_bytes
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.source.read(len(buffer))
        self.bytes_read += len(data)
        if self.bytes_read > self.limit_bytes:
            raise BodyTooLarge(self.bytes_read)
        buffer[: len(data)] = data
        return len(data)


def records_capped(records, max_records: int):
    if isinstance(records, SpooledPredictions):
        records.max_records = max_records
        return records
    return records_counted(records, max_records)


def records_counted(records, max_records: int) -> Iterator:
    for count, record in enumerate(records, start=1):
        if count > max_records:
            raise RecordLimitExceeded(max_records)
        yield record
