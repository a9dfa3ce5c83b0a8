"""JSON and NDJSON predictions read column-wise: Arrow's JSON reader, vectorised checks, COPY.

A body is cut into blocks of whole records by a vectorised scan of its brackets and quotes;
each block is parsed by Arrow into columns, and the rows whose meaning is certain are staged
as the CSV path stages them (columnar.py), with the canonical values and content hash of the
records path. Every other row is decoded alone by Python's JSON decoder, from its own text,
and judged by the records path. The result never depends on which path a row took.

Arrow refuses a whole block for one value it cannot hold (a lone surrogate escape, a key
given twice, a number past float8, a column whose type changes from row to row), and a few
things it accepts the records path does not (NaN, Infinity). Such a body, and any body the scan
cannot frame with certainty, raises ColumnarFallback: it is read again by the tolerant records
path, so one bad record is still quarantined alone and the rest kept.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from monitoring.ingest.columnar import (
    TIMESTAMP,
    ColumnarChunk,
    ColumnarFallback,
    canonical_table,
    dates_exist,
    matches,
    text_ok,
    within_bounds,
)
from monitoring.ingest.validate import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_RECORD_CHARS,
    MAX_TEXT_CHARS,
    MAX_VERSION_CHARS,
)

BLOCK_BYTES = 1 << 21  # body read at a time: about 6,000 records of 10 features
# The members Arrow must read as they are; the others (prediction, features) it types itself.
OWN_SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("timestamp", pa.string()),
        ("model_version", pa.string()),
        ("score", pa.float64()),
        ("segment", pa.string()),
    ]
)
KNOWN = {*OWN_SCHEMA.names, "prediction", "features"}
ARRAY_START = re.compile(rb'[ \t\r\n]*(\[|\{[ \t\r\n]*"records"[ \t\r\n]*:[ \t\r\n]*\[)')
ARRAY_END = {b"[": re.compile(rb"[ \t\r\n]*"), b"{": re.compile(rb"[ \t\r\n]*\}[ \t\r\n]*")}
# Each byte as what it is to the scan: 1 a quote, 2 an opening bracket, 3 a closing one.
STRUCTURE = bytes(
    {ord('"'): 1, ord("{"): 2, ord("["): 2, ord("}"): 3, ord("]"): 3}.get(byte, 0)
    for byte in range(256)
)
MAX_NESTING = 2  # a record, and its features
# Records, and the text between them, longer than this go to the records path, which measures
# a record (or an NDJSON line, blanks included) against MAX_RECORD_CHARS in characters.
MAX_LONG = MAX_RECORD_CHARS // 2


@dataclass
class JsonChunk(ColumnarChunk):
    """A block of JSON records; `texts` holds the text of each, for a conflict's raw content."""

    texts: list[bytes]

    def record(self, k: int) -> dict:
        return json.loads(self.texts[self.good_offsets[k]])


def json_chunks(stream: BinaryIO, *, ndjson: bool, decode) -> Iterator[JsonChunk]:
    """Blocks of the body's records, checked column-wise; `decode(text)` decodes a record the
    columns cannot vouch for. ColumnarFallback when the body is not one that the scan and
    Arrow read exactly as the records path does."""
    for texts in record_blocks(stream, ndjson=ndjson):
        yield block_check(texts, decode)


def record_blocks(stream: BinaryIO, *, ndjson: bool) -> Iterator[list[bytes]]:
    """The text of each record, a block at a time.

    A JSON body is `[...]` or `{"records": [...]}` with nothing else; an NDJSON body holds one
    object a line. Records must be objects nested at most MAX_NESTING deep and no longer than
    MAX_LONG, and the text between them only blanks and commas (or line breaks).
    """
    carry, opener, first = b"", b"", True
    if not ndjson:
        carry = stream.read(BLOCK_BYTES)
        start = ARRAY_START.match(carry)
        if start is None:
            raise ColumnarFallback("not an array of records")
        opener, carry = carry[start.start(1) : start.start(1) + 1], carry[start.end() :]
    while True:
        more = stream.read(BLOCK_BYTES)
        data = carry + more
        spans, closing = record_spans(data, array=not ndjson)
        last_end = closing if closing is not None else (len(data) if not more else None)
        gaps_check(data, spans, last_end, ndjson=ndjson, first=first)
        if spans:
            yield spans.texts(data)
            first = False
        if closing is not None:
            tail_check(data[closing + 1 :] + stream.read(BLOCK_BYTES), opener)
            return
        if not more:
            if not ndjson:
                raise ColumnarFallback("the body ends inside the records")
            return
        carry = data[spans.ends[-1] :] if spans else data
        if len(carry) > 4 * MAX_RECORD_CHARS:
            raise ColumnarFallback("a record longer than the limit")


@dataclass
class Spans:
    """Where the complete records of a piece of the body start and end."""

    starts: list[int]
    ends: list[int]

    def __len__(self) -> int:
        return len(self.ends)

    def texts(self, data: bytes) -> list[bytes]:
        return [data[a:b] for a, b in zip(self.starts, self.ends, strict=True)]


def record_spans(data: bytes, *, array: bool) -> tuple[Spans, int | None]:
    """(start, end) of each complete top-level record in `data`, and where the records
    array closes (None if it does not, in `data`)."""
    marks = np.frombuffer(data.translate(STRUCTURE), np.uint8)
    where = np.flatnonzero(marks)
    kinds = marks[where]
    codes = np.frombuffer(data, np.uint8)
    quotes = unescaped_quotes(data, codes, where[kinds == 1])
    brackets = where[kinds > 1]
    outside = np.searchsorted(quotes, brackets) % 2 == 0  # not inside a string
    brackets, steps = brackets[outside], np.where(kinds[kinds > 1][outside] == 2, 1, -1)
    depth = np.cumsum(steps)
    closing = None
    below = np.flatnonzero(depth < 0)
    if below.size:
        closing = int(brackets[below[0]])
        if not array or data[closing] != ord("]"):
            raise ColumnarFallback("a bracket closes what was not opened")
        brackets, steps, depth = brackets[: below[0]], steps[: below[0]], depth[: below[0]]
    if depth.size and depth.max() > MAX_NESTING:
        raise ColumnarFallback("nested deeper than a record's features")
    starts = brackets[(steps == 1) & (depth == 1)]
    ends = brackets[(steps == -1) & (depth == 0)] + 1
    if not (codes[starts] == ord("{")).all() or not (codes[ends - 1] == ord("}")).all():
        raise ColumnarFallback("a record that is not an object")
    if closing is not None and starts.size != ends.size:
        raise ColumnarFallback("a record the array closes")
    starts = starts[: ends.size]
    if ends.size and (ends - starts).max() > MAX_LONG:
        raise ColumnarFallback("a record near the size limit")
    return Spans(starts.tolist(), ends.tolist()), closing


def unescaped_quotes(data: bytes, codes: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """The quotes that open or close strings: not those escaped by a backslash."""
    after_backslash = quotes[(quotes > 0) & (codes[quotes - 1] == ord("\\"))]
    escaped = [q for q in after_backslash.tolist() if backslashes_before(data, q) % 2]
    return np.setdiff1d(quotes, escaped, assume_unique=True) if escaped else quotes


def backslashes_before(data: bytes, position: int) -> int:
    start = position
    while start > 0 and data[start - 1] == ord("\\"):
        start -= 1
    return position - start


def gaps_check(data: bytes, spans: Spans, last_end, *, ndjson: bool, first: bool) -> None:
    """The text between records is what the records path skips: blanks, and a comma (JSON) or
    a line break (NDJSON) between two records; `last_end` bounds the text after the last."""
    gap_ends = spans.starts + ([last_end] if last_end is not None else [])
    gaps = b"|".join([data[a:b] for a, b in zip([0, *spans.ends], gap_ends, strict=False)])
    pattern = gaps_pattern(ndjson, first=first, spans=bool(spans), last=last_end is not None)
    if len(gaps) > MAX_LONG or pattern.fullmatch(gaps) is None:
        raise ColumnarFallback("text between records")
    if ndjson:  # line breaks only between records, none inside one
        checked = data[: last_end if last_end is not None else ([0, *spans.ends][-1])]
        for mark in (b"\n", b"\r"):
            if checked.count(mark) != gaps.count(mark):
                raise ColumnarFallback("a record over more than one line")


@functools.cache
def gaps_pattern(ndjson: bool, *, first: bool, spans: bool, last: bool) -> re.Pattern:
    """The gaps joined by '|': the one before the first record, those between, the last."""
    blank = rb"[ \t\r\n]*"
    between = rb"[ \t]*[\r\n]" + blank if ndjson else blank + b"," + blank
    if not spans:
        return re.compile(blank if first or last else b"")
    head = blank if first else between
    return re.compile(head + rb"(\|" + between + rb")*" + (rb"\|" + blank if last else b""))


def tail_check(tail: bytes, opener: bytes) -> None:
    if ARRAY_END[opener].fullmatch(tail) is None:
        raise ColumnarFallback("text after the records")


def block_check(texts: list[bytes], decode) -> JsonChunk:
    """One block of records: the certain rows column-wise, the others as decoded records."""
    joined = b"\n".join(texts)
    try:
        joined.decode("utf-8")
        table = pa_json.read_json(
            pa.BufferReader(joined),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=len(joined) + 1),
            parse_options=pa_json.ParseOptions(
                explicit_schema=OWN_SCHEMA, unexpected_field_behavior="infer"
            ),
        )
    except (UnicodeDecodeError, pa.ArrowException) as error:
        raise ColumnarFallback(str(error)) from None
    if table.num_rows != len(texts) or not set(table.column_names) <= KNOWN:
        raise ColumnarFallback("members the records path names")
    if any(not_finite(column) for column in leaves(table)):
        raise ColumnarFallback("NaN or Infinity")
    size = table.num_rows
    cols = {name: table[name].combine_chunks() for name in table.column_names}
    nothing = pa.nulls(size, pa.string())
    label, label_num, ok = labels(cols.get("prediction", nothing))
    ok = pc.and_(ok, text_ok(cols["prediction_id"], 1, MAX_ID_CHARS))
    ok = pc.and_(ok, text_ok(cols["model_version"], 1, MAX_VERSION_CHARS))
    segment = cols["segment"].fill_null("")
    ok = pc.and_(ok, text_ok(segment, 0, MAX_TEXT_CHARS))
    score, score_repr, score_ok = scores(cols["score"])
    ok = pc.and_(ok, score_ok)
    features, features_ok = features_json(cols.get("features", nothing))
    ok = pc.and_(ok, features_ok)
    timestamp = cols["timestamp"].fill_null("")
    ok = pc.and_(ok, matches(timestamp, TIMESTAMP)).fill_null(False)
    ok = within_bounds(timestamp, pc.and_(ok, dates_exist(timestamp, ok)))
    keep = pc.indices_nonzero(ok)
    take = lambda array: pc.take(array, keep)  # noqa: E731
    good = canonical_table(
        prediction_id=take(cols["prediction_id"]),
        timestamp=take(timestamp),
        version=take(cols["model_version"]),
        label=take(label),
        label_num=take(label_num),
        score=take(score),
        score_repr=take(score_repr),
        segment=take(segment),
        features=take(features),
    )
    rest = pc.indices_nonzero(pc.invert(ok)).to_pylist()
    others = [(k, record_decoded(texts[k], decode)) for k in rest]
    return JsonChunk(good, keep.to_pylist(), others, size, texts)


def record_decoded(text: bytes, decode):
    """A record the columns could not vouch for, as the records path decodes it."""
    try:
        return decode(text.decode("utf-8"))
    except ValueError as error:
        raise ColumnarFallback(str(error)) from None


def leaves(table: pa.Table) -> Iterator[pa.Array]:
    for column in table.columns:
        column = column.combine_chunks()
        if pa.types.is_struct(column.type):
            yield from (column.field(i) for i in range(column.type.num_fields))
        else:
            yield column


def not_finite(column: pa.Array) -> bool:
    if not pa.types.is_floating(column.type):
        return False
    return bool(pc.any(pc.invert(pc.is_finite(column))).as_py())


def float_text(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """repr() of each float where Arrow's text is the same, and whether it is: both print the
    shortest digits that read back; repr() in fixed notation for floats from 0.0001 (smaller
    ones have an exponent) to below 1e16, Arrow for fewer digits, and without ".0"."""
    text = pc.cast(column, pa.string())
    size = pc.abs(column)
    same = pc.and_(pc.greater_equal(size, 1e-4), pc.less(size, 1e15))
    same = pc.and_(same, pc.not_equal(pc.floor(column), column))
    same = pc.and_(same, pc.invert(pc.match_substring(text, "e")))
    return text, same.fill_null(False)


def labels(column: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Canonical label text, its number, and whether the value is certain; a label of any
    other type (an object, a list) sends the body to the records path."""
    kind = column.type
    if pa.types.is_string(kind):
        ok = text_ok(column, 0, MAX_TEXT_CHARS)
        return column, pa.nulls(len(column), pa.float64()), ok.fill_null(False)
    if pa.types.is_boolean(kind):
        text = pc.if_else(column, "1", "0")
        return text, pc.cast(column, pa.float64()), pc.is_valid(column)
    if pa.types.is_integer(kind):
        number = pc.cast(column, pa.float64(), safe=False)
        return pc.cast(column, pa.string()), number, pc.is_valid(column)
    if pa.types.is_floating(kind):
        text, fraction = float_text(column)
        # a whole float is labelled as the integer; exact while it is below 2**53
        whole = pc.and_(pc.equal(pc.floor(column), column), pc.less(pc.abs(column), 1e15))
        as_int = pc.cast(pc.cast(pc.if_else(whole, column, 0.0), pa.int64()), pa.string())
        ok = pc.or_(fraction, whole.fill_null(False)).fill_null(False)
        return pc.if_else(fraction, text, as_int), column, ok
    if pa.types.is_null(kind):
        nulls = pa.nulls(len(column), pa.string())
        return nulls, pa.nulls(len(column), pa.float64()), pa.array([False] * len(column))
    raise ColumnarFallback("a label that is not a number, string or boolean")


def scores(column: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """The score, repr() of it ("None" when absent), and whether that text is certain."""
    text, fraction = float_text(column)
    inside = pc.and_(pc.greater_equal(column, 0.0), pc.less_equal(column, 1.0))
    plain = pc.if_else(pc.equal(text, "0"), "0.0", pc.if_else(pc.equal(text, "1"), "1.0", text))
    certain = pc.or_(pc.is_in(text, pa.array(["0", "1"])), fraction)
    ok = pc.or_kleene(pc.is_null(column), pc.and_(inside, certain).fill_null(False))
    return column, plain.fill_null("None"), ok


def features_json(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each row's features as the records path writes them (sorted keys, compact), and
    whether that text is certain. A null feature could be `null` or a missing key, which write
    differently: such a row is judged by the records path."""
    size = len(column)
    if pa.types.is_null(column.type):
        return pa.nulls(size, pa.string()), pa.array([True] * size)
    if not pa.types.is_struct(column.type):
        raise ColumnarFallback("features that are not an object")
    names = [column.type.field(i).name for i in range(column.type.num_fields)]
    if any(len(name) > MAX_NAME_CHARS or "\x00" in name for name in names):
        raise ColumnarFallback("a feature name the records path refuses")
    parts, ok = [], pa.array([True] * size)
    for position, name in enumerate(sorted(names)):
        value, certain = feature_json(column.field(name))
        key = ("{" if position == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":"
        parts += [key, value]
        ok = pc.and_(ok, certain)
    text = pc.binary_join_element_wise(*parts, "}", "") if parts else pa.array(["{}"] * size)
    present = pc.is_valid(column)
    return pc.if_else(present, text, pa.scalar(None, pa.string())), pc.or_(pc.invert(present), ok)


def feature_json(value: pa.Array) -> tuple[pa.Array, pa.Array]:
    """One feature as JSON text, and whether it is certain (a null never is)."""
    kind = value.type
    if pa.types.is_integer(kind):
        text, ok = pc.cast(value, pa.string()), pc.is_valid(value)
    elif pa.types.is_floating(kind):
        text, ok = float_text(value)
    elif pa.types.is_boolean(kind):
        text, ok = pc.if_else(value, "true", "false"), pc.is_valid(value)
    elif pa.types.is_string(kind):
        escaped = pc.replace_substring(pc.replace_substring(value, "\\", "\\\\"), '"', '\\"')
        text = pc.binary_join_element_wise('"', escaped, '"', "")
        plain = pc.invert(matches(value, r"[\x00-\x1f]"))
        ok = pc.and_(plain, pc.less_equal(pc.utf8_length(value), MAX_TEXT_CHARS))
    elif pa.types.is_null(kind):
        return pa.array(["null"] * len(value)), pa.array([False] * len(value))
    else:
        raise ColumnarFallback("a feature that is not a number, string, boolean or null")
    return text.fill_null("null"), ok.fill_null(False)
