"""CSV predictions read column-wise with pyarrow: the common case without a Python loop per cell.

Each block of rows is checked with vectorised rules that accept only cells whose meaning is
certain (a plain integer, a short decimal, a word, an RFC 3339 timestamp...). Rows that pass
are staged for COPY as CSV written by Arrow, with the same canonical values and content hash as
the record-by-record path; every other row goes through that path, so its verdict and
messages are the same as for JSON. The result never depends on which path a row took.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from monitoring.ingest.validate import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    MAX_VERSION_CHARS,
    SCORES_SUM_TOLERANCE,
    timestamp_bounds,
)

# About 7,000 rows of 10 features per block. Arrow's streaming reader reads some 30 blocks
# ahead of the one parsed, so the block size decides the memory a large body takes.
BLOCK_BYTES = 1 << 20
SCORES_PREFIX = "score:"  # a CSV or Parquet column of one class's score
OWN = ("prediction_id", "timestamp", "model_version", "prediction", "score", "segment")
TIMESTAMP = (
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
INTEGER = r"^(0|-?[1-9]\d{0,15})$"
# Decimals whose Python repr is the text itself: few digits, no trailing zero, not tiny.
NUMBER = (
    r"^(0|-?[1-9]\d{0,15}|-?[1-9]\d{0,6}\.(0|\d{0,6}[1-9])|-?0\.(0|0{0,3}[1-9](\d{0,8}[1-9])?))$"
)
WORD = r"^[A-Za-z_][A-Za-z0-9_ .:/-]{0,199}$"
NOT_A_WORD = r"(?i)^(true|false|nan|inf|infinity)$"
SCORE = r"^(0|1|0\.0{0,3}[1-9](\d{0,8}[1-9])?)$"
# Timestamps whose canonical text is a cut of their own: UTC, to the second.
UTC_TO_THE_SECOND = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|\+00:00)$"
# Words that are JSON strings as they are: no digit, quote, backslash or control character.
PLAIN_WORD = r"^[A-Za-z_][A-Za-z_ .:/-]{0,199}$"
NOT_TEXT = r"(?i)^(true|false|(nan|inf|infinity)\s*)$"  # booleans, or floats to Python
NUMBER_LIKE = r"(?i)(\p{Nd}|^\s*[+-]?\s*(nan|inf|infinity)\s*$)"
STAGE_COLUMNS = (
    "idx",
    "prediction_id",
    "ts",
    "version_id",
    "prediction",
    "prediction_num",
    "score",
    "segment",
    "features",
    "scores",
    "content_md5",
)


@dataclass
class ColumnarChunk:
    """A block of CSV rows: those staged column-wise, and the others as records."""

    good: pa.Table  # canonical columns of the rows that passed, in row order
    good_offsets: list[int]  # their offsets in the block
    others: list[tuple[int, dict]]  # (offset, record) of the rest
    size: int

    def __len__(self) -> int:
        return self.size

    def versions(self) -> set[str]:
        return (
            set(pc.unique(self.good["model_version"]).to_pylist()) if self.good.num_rows else set()
        )

    def record(self, k: int) -> dict:
        """The k-th good row as a record (for a conflict's raw content)."""
        row = self.good.slice(k, 1).to_pylist()[0]
        record = {name: row[name] for name in ("prediction_id", "model_version", "segment")}
        record["timestamp"] = row["ts"]
        record["prediction"] = row["prediction"]
        record["score"] = row["score"]
        record["features"] = json.loads(row["features"]) if row["features"] else None
        if row["scores"]:
            record["scores"] = json.loads(row["scores"])
        return record

    def copy_csv(self, version_ids: dict[str, int], *, first_idx=None, constants=()) -> bytes:
        """The good rows as CSV for COPY (NULL unquoted, '' quoted): an `idx` column first when
        `first_idx` is given, then STAGE_COLUMNS' order, then the constant columns."""
        names = list(version_ids)
        ids = pa.array([version_ids[name] for name in names], pa.int64())
        good, size = self.good, self.good.num_rows
        columns = {
            "prediction_id": good["prediction_id"],
            "ts": good["ts"],
            "version_id": pc.take(ids, pc.index_in(good["model_version"], pa.array(names))),
            "prediction": good["prediction"],
            "prediction_num": good["prediction_num"],
            "score": good["score"],
            "segment": good["segment"],
            "features": good["features"],
            "scores": good["scores"],
            "content_md5": good["content_md5"],
        }
        if first_idx is not None:
            columns = {"idx": pa.array(range(first_idx, first_idx + size), pa.int64()), **columns}
        for number, value in enumerate(constants):
            columns[f"constant_{number}"] = pa.array([value] * size, pa.int64())
        return copy_csv_of(columns)

    def keys_csv(self, model_id: int) -> bytes:
        """The good rows' keys as CSV for COPY into PredictionKey."""
        return copy_csv_of(
            {
                "model_id": pa.array([model_id] * self.good.num_rows, pa.int64()),
                "prediction_id": self.good["prediction_id"],
                "ts": self.good["ts"],
            }
        )

    def hours(self) -> set[datetime]:
        texts = pc.unique(pc.utf8_slice_codeunits(self.good["ts"], 0, 13)).to_pylist()
        return {datetime.fromisoformat(f"{text}:00:00+00:00") for text in texts}


def copy_csv_of(columns: dict[str, pa.Array]) -> bytes:
    """Columns as CSV for COPY: NULL unquoted, '' quoted."""
    sink = io.BytesIO()
    options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
    pa_csv.write_csv(pa.table(columns), sink, options)
    return sink.getvalue()


class ColumnarFallback(Exception):
    """The body is not regular enough for the column-wise path; read it record by record."""


def refuse(row) -> str:
    return "error"  # a row with the wrong number of cells: the records path reports it exactly


def csv_header(stream: BinaryIO) -> list[str] | None:
    line = stream.readline(1 << 20)
    if not line:
        return None
    return next(csv.reader([line.decode("utf-8")]), None)


def columnar_usable(header: list[str]) -> bool:
    features = [name for name in header if name not in OWN]
    classes = [name[len(SCORES_PREFIX) :] for name in header if name.startswith(SCORES_PREFIX)]
    return (
        len(set(header)) == len(header)
        and all(0 < len(name) <= MAX_TEXT_CHARS and "\x00" not in name for name in classes)
        and all(
            name in header for name in ("prediction_id", "timestamp", "model_version", "prediction")
        )
        and all(0 < len(name) <= MAX_NAME_CHARS and "\x00" not in name for name in features)
    )


def columnar_chunks(stream: BinaryIO, header: list[str], cell_record) -> Iterator[ColumnarChunk]:
    """Blocks of the body after its header; `cell_record(row)` types one fallback row."""
    try:
        reader = open_reader(stream, header)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            yield block_check(batch, header, cell_record)
    except pa.ArrowInvalid as error:  # invalid UTF-8, a ragged row
        raise ColumnarFallback(str(error)) from None


def open_reader(stream: BinaryIO, header: list[str]):
    return pa_csv.open_csv(
        stream,
        read_options=pa_csv.ReadOptions(column_names=header, block_size=BLOCK_BYTES),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=refuse),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(header, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def text_ok(column: pa.Array, low: int, high: int) -> pa.Array:
    length = pc.utf8_length(column)
    return pc.and_(
        pc.and_(pc.greater_equal(length, low), pc.less_equal(length, high)),
        pc.invert(pc.match_substring(column, "\x00")),
    )


def matches(column: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(column, pattern)


def block_check(batch: pa.RecordBatch, header: list[str], cell_record) -> ColumnarChunk:
    cols = {name: batch.column(i) for i, name in enumerate(header)}
    for column in cols.values():  # the records path refuses such a cell: so must we
        if batch.num_rows and pc.max(pc.binary_length(column)).as_py() > csv.field_size_limit():
            raise ColumnarFallback("a cell over the CSV field limit")
    empty = pa.array([""] * batch.num_rows, pa.string())
    ok = text_ok(cols["prediction_id"], 1, MAX_ID_CHARS)
    ok = pc.and_(ok, text_ok(cols["model_version"], 1, MAX_VERSION_CHARS))
    segment = cols.get("segment", empty)
    ok = pc.and_(ok, text_ok(segment, 0, MAX_TEXT_CHARS))
    ok = pc.and_(ok, matches(cols["timestamp"], TIMESTAMP))
    label, label_num, label_ok = labels(cols["prediction"])
    ok = pc.and_(ok, label_ok)
    score_text = cols.get("score", empty)
    ok = pc.and_(ok, pc.or_(pc.equal(score_text, ""), matches(score_text, SCORE)))
    names = [name for name in header if name not in OWN and not name.startswith(SCORES_PREFIX)]
    features, features_ok = features_json(cols, names)
    ok = pc.and_(ok, features_ok)
    scores, scores_ok = scores_json(cols, header, label)
    ok = pc.and_(ok, scores_ok)
    ok = pc.and_(ok.fill_null(False), dates_exist(cols["timestamp"], ok))
    ok = pc.and_(ok, within_bounds(cols["timestamp"], ok))
    keep = pc.indices_nonzero(ok)
    good = good_table(cols, keep, label, label_num, score_text, segment, features, scores)
    rest = pc.indices_nonzero(pc.invert(ok))
    others = [
        (offset, cell_record(row))
        for offset, row in zip(rest.to_pylist(), batch.take(rest).to_pylist(), strict=True)
    ]
    return ColumnarChunk(good, keep.to_pylist(), others, batch.num_rows)


def labels(text: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Canonical label text, its number, and whether the cell is certain."""
    lowered = pc.utf8_lower(text)
    is_bool = pc.is_in(lowered, pa.array(["true", "false"]))
    is_int = matches(text, INTEGER)
    is_word = pc.and_(matches(text, WORD), pc.invert(matches(text, NOT_A_WORD)))
    label = pc.if_else(is_bool, pc.if_else(pc.equal(lowered, "true"), "1", "0"), text)
    as_int = pc.cast(pc.if_else(is_int, text, "0"), pa.float64())
    as_bool = pc.cast(pc.equal(lowered, "true"), pa.float64())
    no_number = pa.scalar(None, pa.float64())
    number = pc.if_else(is_int, as_int, pc.if_else(is_bool, as_bool, no_number))
    return label, number, pc.or_(pc.or_(is_bool, is_int), is_word)


def cell_json(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A CSV cell as the JSON the records path writes for it, and whether that is certain."""
    is_null = pc.equal(text, "")
    is_number = matches(text, NUMBER)
    plain = pc.or_(is_null, is_number)
    if pc.all(plain).as_py():  # a numeric column: the common case, two cheap passes
        return pc.if_else(is_null, "null", text), plain
    words = pc.and_(matches(text, PLAIN_WORD), pc.invert(matches(text, NOT_TEXT)))
    sure = pc.or_(plain, words)
    # A cell holding a digit that is not a plain number is uncertain below as well.
    if pc.all(pc.or_(sure, matches(text, "[0-9]"))).as_py():
        quoted = pc.binary_join_element_wise('"', text, '"', "")
        return pc.if_else(is_null, "null", pc.if_else(is_number, text, quoted)), sure
    lowered = pc.utf8_lower(text)
    is_bool = pc.is_in(lowered, pa.array(["true", "false"]))
    is_string = pc.and_(
        pc.invert(matches(text, NUMBER_LIKE)), pc.invert(matches(text, r"[\x00-\x1f]"))
    )
    is_string = pc.and_(is_string, pc.less_equal(pc.utf8_length(text), MAX_TEXT_CHARS))
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    quoted = pc.binary_join_element_wise('"', escaped, '"', "")
    value = pc.if_else(is_number, text, quoted)
    value = pc.if_else(is_null, "null", pc.if_else(is_bool, lowered, value))
    certain = pc.or_(pc.or_(plain, is_bool), is_string)
    return value, certain


def features_json(cols: dict, names: list[str]) -> tuple[pa.Array, pa.Array]:
    size = len(cols["prediction_id"])
    if not names:
        return pa.nulls(size, pa.string()), pa.array([True] * size)
    parts, certain = [], pa.array([True] * size)
    for position, name in enumerate(sorted(names)):
        value, ok = cell_json(cols[name])
        key = ("{" if position == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":"
        parts += [key, value]
        certain = pc.and_(certain, ok)
    return pc.binary_join_element_wise(*parts, "}", ""), certain


def scores_json(cols: dict, header: list[str], label: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The `score:CLASS` cells as the canonical JSON the records path stores for a row's
    `scores` (null when every cell is empty), and whether the row is certain to pass its
    rules: every cell empty or a plain probability (`SCORE`), and then either none given or
    two or more, the predicted class among them, summing to 1 within the tolerance (added in
    the columns' order, as the records path adds them). Other rows go to the records path,
    which says why."""
    size = len(cols["prediction_id"])
    columns = [
        (name[len(SCORES_PREFIX) :], cols[name])
        for name in header
        if name.startswith(SCORES_PREFIX)
    ]
    if not columns:
        return pa.nulls(size, pa.string()), pa.array([True] * size)
    certain = pa.array([True] * size)
    given = pa.array([0] * size, pa.int64())
    total = pa.array([0.0] * size)
    named = pa.array([False] * size)
    members = {}
    for cls, text in columns:
        empty, plain = pc.equal(text, ""), matches(text, SCORE)
        certain = pc.and_(certain, pc.or_(empty, plain))
        value = pc.cast(pc.if_else(plain, text, pa.scalar(None, pa.string())), pa.float64())
        total = pc.add(total, value.fill_null(0.0))
        given = pc.add(given, pc.cast(pc.invert(empty), pa.int64()))
        named = pc.or_(named, pc.and_(pc.invert(empty), pc.equal(label, cls)))
        text_repr = pc.if_else(
            pc.equal(text, "1"), "1.0", pc.if_else(pc.equal(text, "0"), "0.0", text)
        )
        key = "," + json.dumps(cls, ensure_ascii=False) + ":"
        # each given member after a comma, the first comma cut below (Arrow's join that skips
        # nulls drops a row whose members are all null)
        members[cls] = pc.if_else(empty, "", pc.binary_join_element_wise(key, text_repr, ""))
    some = pc.greater(given, 0)
    sums_to_one = pc.less_equal(pc.abs(pc.subtract(total, 1.0)), SCORES_SUM_TOLERANCE)
    valid = pc.and_(pc.and_(pc.greater_equal(given, 2), sums_to_one), named)
    certain = pc.and_(certain, pc.or_(pc.invert(some), valid))
    joined = pc.binary_join_element_wise(*(members[cls] for cls in sorted(members)), "")
    text = pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(joined, 1), "}", "")
    return pc.if_else(some, text, pa.scalar(None, pa.string())), certain


def dates_exist(text: pa.Array, ok: pa.Array) -> pa.Array:
    """Well-formed timestamps can still name no day (February 30th): ask Python about those
    only when Arrow refuses the block's."""
    try:
        pc.cast(pc.filter(text, ok), pa.timestamp("us", tz="UTC"))
        return ok
    except pa.ArrowInvalid:
        return pa.array([date_exists(value) for value in text.to_pylist()])


def within_bounds(text: pa.Array, ok: pa.Array) -> pa.Array:
    """Timestamps between the floor and now plus the skew; the others go to the records path,
    which says why. Only the rows still `ok` are certain to cast."""
    floor, ceiling = timestamp_bounds()
    try:
        moment = pc.cast(pc.if_else(ok, text, floor.isoformat()), pa.timestamp("us", tz="UTC"))
    except pa.ArrowInvalid:  # a time Python reads and Arrow does not: the records path decides
        return pa.array([False] * len(text))
    inside = pc.and_(pc.greater_equal(moment, floor), pc.less_equal(moment, ceiling))
    return pc.and_(ok, inside)


def date_exists(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def good_table(cols, keep, label, label_num, score_text, segment, features, scores) -> pa.Table:
    take = lambda array: pc.take(array, keep)  # noqa: E731
    score_text = take(score_text)
    # repr() of the float the records path makes of the cell
    score_repr = pc.if_else(pc.equal(score_text, "1"), "1.0", score_text)
    score_repr = pc.if_else(pc.equal(score_text, "0"), "0.0", score_repr)
    score_repr = pc.if_else(pc.equal(score_text, ""), "None", score_repr)
    score = pc.cast(
        pc.if_else(pc.equal(score_text, ""), pa.scalar(None, pa.string()), score_text), pa.float64()
    )
    return canonical_table(
        prediction_id=take(cols["prediction_id"]),
        timestamp=take(cols["timestamp"]),
        version=take(cols["model_version"]),
        label=take(label),
        label_num=take(label_num),
        score=score,
        score_repr=score_repr,
        segment=take(segment),
        features=take(features),
        scores=take(scores),
    )


def canonical_table(
    *,
    prediction_id,
    timestamp,
    version,
    label,
    label_num,
    score,
    score_repr,
    segment,
    features,
    scores=None,
) -> pa.Table:
    """The staged columns of rows known valid, in the records path's canonical forms, with the
    content hash it would compute (`score_repr` is repr() of each score, "None" for none; a
    row's `scores` JSON joins the hashed text only where it has one, as there)."""
    iso = iso_utc(timestamp)
    if scores is None:
        scores = pa.nulls(len(prediction_id), pa.string())
    digest_text = pc.binary_join_element_wise(
        iso, version, label, score_repr, segment, features.fill_null("None"), "\x1f"
    )
    with_scores = pc.binary_join_element_wise(digest_text, scores.fill_null(""), "\x1f")
    digest_text = pc.if_else(pc.is_null(scores), digest_text, with_scores)
    return pa.table(
        {
            "prediction_id": prediction_id,
            "ts": iso,
            "model_version": version,
            "prediction": label,
            "prediction_num": label_num,
            "score": score,
            "segment": segment,
            "features": features,
            "scores": scores,
            "content_md5": md5_hex(digest_text),
        }
    )


def iso_utc(text: pa.Array) -> pa.Array:
    """What isoformat() writes of each (valid) timestamp in UTC: cut from the text when it is
    UTC to the second already, the common case; else printed, a slower kernel."""
    if pc.all(matches(text, UTC_TO_THE_SECOND)).as_py():
        return pc.binary_join_element_wise(pc.utf8_slice_codeunits(text, 0, 19), "+00:00", "")
    moment = pc.cast(text, pa.timestamp("us", tz="UTC"))
    whole = pc.strftime(moment, format="%Y-%m-%dT%H:%M:%S")
    return pc.binary_join_element_wise(
        pc.replace_substring_regex(whole, r"\.000000$", ""), "+00:00", ""
    )


def md5_hex(texts: pa.Array) -> pa.Array:
    """MD5 of each UTF-8 text, hashed from Arrow's buffer without making Python strings."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if texts.null_count:
        raise ValueError("md5_hex of a null")
    _, offsets, data = texts.buffers()
    bounds = np.frombuffer(offsets, np.int32, len(texts) + 1, texts.offset * 4).tolist()
    view = memoryview(data) if data is not None else memoryview(b"")
    md5 = hashlib.md5
    return pa.array(
        [md5(view[a:b], usedforsecurity=False).hexdigest() for a, b in pairwise(bounds)],
        pa.string(),
    )
