"""Request bodies to records: JSON, NDJSON, CSV and Parquet.

A body that cannot be read at all raises BodyError (the request stores nothing). A single
unreadable line of NDJSON becomes an `Unreadable` record, rejected and quarantined on its own.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

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
    raw: str
    message: str


def reject_constant(name: str):
    raise ValueError(f"{name} is not a valid JSON number")


def json_loads(text: str):
    return json.loads(text, parse_constant=reject_constant)


def decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BodyError(f"the body is not valid UTF-8 (byte {error.start})") from None


def parse_json(body: bytes) -> list:
    try:
        data = json_loads(decode(body))
    except json.JSONDecodeError as error:
        raise BodyError(
            f"the body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except ValueError as error:
        raise BodyError(f"the body is not valid JSON: {error}") from None
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        return data["records"]
    if isinstance(data, list):
        return data
    raise BodyError('the body must be {"records": [...]} or an array of records')


def parse_ndjson(body: bytes) -> Iterator:
    for number, line in enumerate(decode(body).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield json_loads(line)
        except ValueError as error:
            yield Unreadable(line[:10_000], f"line {number} is not valid JSON: {error}")


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
    """A flat row (CSV or Parquet) to the record shape of the JSON API."""
    own = PREDICTION_COLUMNS if kind == "predictions" else OUTCOME_COLUMNS
    record = {name: row[name] for name in own if row.get(name) is not None}
    extra = {name: value for name, value in row.items() if name not in own}
    if extra:
        record["features" if kind == "predictions" else "values"] = extra
    return record


def parse_csv(body: bytes, kind: str) -> Iterator[dict]:
    reader = csv.reader(io.StringIO(decode(body), newline=""))
    header = next(reader, None)
    if not header:
        raise BodyError("the CSV body has no header row")
    check_columns(header, kind)
    for line_number, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            yield Unreadable(
                ",".join(cells)[:10_000],
                f"line {line_number} has {len(cells)} cells, the header has {len(header)}",
            )
            continue
        row = {
            name: (cell or None) if name in TEXT_COLUMNS else cell_value(cell)
            for name, cell in zip(header, cells, strict=True)
        }
        yield tabular_record(row, kind)


def parse_parquet(body: bytes, kind: str) -> Iterator[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(body))
    except (pa.ArrowInvalid, OSError) as error:
        raise BodyError(f"the body is not a readable Parquet file: {error}") from None
    check_columns(parquet.schema_arrow.names, kind)
    for batch in parquet.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            for name in TEXT_COLUMNS & row.keys():
                if row[name] is not None and not isinstance(row[name], str):
                    row[name] = (
                        row[name].isoformat() if hasattr(row[name], "isoformat") else row[name]
                    )
            yield tabular_record(row, kind)


MEDIA_TYPES = (
    "application/json",
    "application/x-ndjson",
    "text/csv",
    "application/vnd.apache.parquet",
)


def parse_body(body: bytes, media_type: str, kind: str) -> Iterator:
    if media_type == "application/json":
        return iter(parse_json(body))
    if media_type == "application/x-ndjson":
        return parse_ndjson(body)
    if media_type == "text/csv":
        return parse_csv(body, kind)
    if media_type == "application/vnd.apache.parquet":
        return parse_parquet(body, kind)
    raise ValueError(media_type)
