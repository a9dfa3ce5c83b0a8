"""The rows of a chunk of dirty hours, read column by column, for the sketches.

Two readers fill the same `ChunkRows`, row i of every column being the same prediction:
- `rows_select` (PostgreSQL): one statement per chunk (per `FEATURES_PER_STATEMENT` features),
  an array per column. The database reads each row's `features` once (`jsonb_to_record`: a
  TOASTed document is decompressed once per row, not once per feature) and sends numbers as
  float8 arrays in binary, NaN where a value is missing or not a number;
- `rows_load` (SQLite, the embedded default): the rows read into Python through the ORM.
Then `monitoring.pipeline.sketch_groups` turns the columns into every sketch of the chunk at
once, whichever reader filled them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import psycopg
from django.db import connection
from django.db.models import F, FilteredRelation, Q
from django.db.models.functions import TruncHour
from psycopg import sql

from common.sql import binary_array, db_datetime, hashing, is_postgres
from common.time import HOUR, hour_ranges
from factory.models import MLModel, Task
from monitoring.models import Prediction
from monitoring.pipeline.bins import UNKNOWN, Bins
from monitoring.stats.histograms import is_missing
from monitoring.stats.profile import category_key, numeric_values, out_of_range_count

FEATURES_PER_STATEMENT = 400  # a statement's columns stay far below PostgreSQL's 1,664
MAX_IDENTIFIER_BYTES = 63  # longer feature names are read by key, not by record column


@dataclass
class Categories:
    """A categorical feature's column: a code per row (-1: missing) into ``keys``."""

    codes: np.ndarray
    keys: list[str]


@dataclass
class LabelValues:
    """The business values of the rows' own labels, one entry per (row, value name): the
    row's index in the chunk, the name's code into ``names``, and the number."""

    row: np.ndarray  # int64
    code: np.ndarray  # int64
    number: np.ndarray  # float64
    names: list[str]

    @classmethod
    def empty(cls) -> LabelValues:
        whole = np.array([], dtype=np.int64)
        return cls(whole, whole, np.array([], dtype=float), [])

    @classmethod
    def of(cls, row: np.ndarray, names: np.ndarray, number: np.ndarray) -> LabelValues:
        codes, uniques = pd.factorize(pd.Series(names, dtype=object), sort=True)
        return cls(
            np.asarray(row, dtype=np.int64),
            np.asarray(codes, dtype=np.int64),
            np.asarray(number, dtype=float),
            [str(name) for name in uniques],
        )


@dataclass
class ChunkRows:
    """A chunk's predictions, a column each (NaN or None where a value is missing)."""

    version: np.ndarray  # version id
    segment: np.ndarray  # text
    hour: np.ndarray  # the hour's start, in seconds since the epoch
    score: np.ndarray
    actual: np.ndarray  # 1.0 the positive class, 0.0 another, NaN not judged (binary)
    delay: np.ndarray  # label delay in seconds, NaN without a label
    predicted: np.ndarray  # 1.0 the prediction is the positive class, else 0.0
    correct: np.ndarray  # the label's `correct`: 1.0, 0.0, NaN unknown or no label
    prediction_num: np.ndarray  # numeric prediction, NaN without one
    outcome_num: np.ndarray  # numeric outcome, NaN without one
    outcome: np.ndarray | None = None  # multiclass: the outcome, None when not judged
    prediction: np.ndarray | None = None  # multiclass
    # Multiclass: each row's score per class of `classes` (NaN: the row has no scores), a
    # class a row's scores leave out counted 0 (its probability, as they sum to 1 without it).
    class_scores: np.ndarray | None = None
    classes: list[str] = field(default_factory=list)
    values: LabelValues = field(default_factory=LabelValues.empty)  # the labels' values
    numbers: dict[str, np.ndarray] = field(default_factory=dict)  # numerical features
    categories: dict[str, Categories] = field(default_factory=dict)  # categorical features
    present: dict[str, np.ndarray] = field(default_factory=dict)  # unknown kind: not null

    def __len__(self) -> int:
        return self.version.size

    def days_only(self, days: list[int]) -> ChunkRows:
        """The rows of the given days (their starts, in seconds since the epoch), each in its
        day's group: ``hour`` holds the day's start."""
        day = self.hour - self.hour % 86400
        keep = np.isin(day, days)

        def pick(column):
            return None if column is None else column[keep]

        position = np.cumsum(keep) - 1  # each kept row's index among the kept
        valued = keep[self.values.row]
        values = LabelValues(
            position[self.values.row[valued]],
            self.values.code[valued],
            self.values.number[valued],
            self.values.names,
        )

        return ChunkRows(
            version=self.version[keep],
            segment=self.segment[keep],
            hour=day[keep],
            score=self.score[keep],
            actual=self.actual[keep],
            delay=self.delay[keep],
            predicted=self.predicted[keep],
            correct=self.correct[keep],
            prediction_num=self.prediction_num[keep],
            outcome_num=self.outcome_num[keep],
            outcome=pick(self.outcome),
            prediction=pick(self.prediction),
            class_scores=pick(self.class_scores),
            classes=self.classes,
            values=values,
            numbers={name: values[keep] for name, values in self.numbers.items()},
            categories={
                name: Categories(column.codes[keep], column.keys)
                for name, column in self.categories.items()
            },
            present={name: values[keep] for name, values in self.present.items()},
        )


def chunk_features(bins: dict[int, dict[str, Bins]]) -> list[tuple[str, str]]:
    """(name, kind) of every feature column: each kind a feature has in any version (versions
    may differ), read once for all versions."""
    return sorted({(b.name, b.kind) for one in bins.values() for b in one.values()})


def categories_of(values: list, parse=lambda value: value) -> Categories:
    """Codes into category keys for a column of values (None: missing); ``parse`` reads a
    distinct value (JSON text) before it is keyed, once per value, not once per row."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    keys = [category_key(parse(value)) for value in uniques]
    keys, key_codes = np.unique(np.array(keys, dtype=object), return_inverse=True)
    codes = np.where(codes >= 0, key_codes[np.maximum(codes, 0)], -1) if len(uniques) else codes
    return Categories(np.asarray(codes, dtype=np.int64), keys.tolist())


# --- PostgreSQL ---


def feature_value(name: str) -> sql.Composable:
    """The feature's JSON value in the row: its `jsonb_to_record` column, or (a name too long
    or empty for a column) the `->` operator, which decompresses the document again."""
    if 0 < len(name.encode()) <= MAX_IDENTIFIER_BYTES:
        return sql.SQL("x.{}").format(sql.Identifier(name))
    return sql.SQL("(p.features -> {})").format(sql.Literal(name))


def feature_column(name: str, kind: str) -> sql.Composable:
    value = feature_value(name)
    if kind == "numerical":
        template = (
            "array_send(array_agg(CASE WHEN jsonb_typeof({v}) = 'number' THEN ({v})::float8 "
            "ELSE 'NaN'::float8 END))"
        )
    elif kind == UNKNOWN:
        template = (
            "array_send(array_agg(coalesce(jsonb_typeof({v}) <> 'null', false)::int::float8))"
        )
    else:
        template = "array_agg(CASE WHEN jsonb_typeof({v}) <> 'null' THEN ({v})::text END)"
    return sql.SQL(template).format(v=value)


def statement(model: MLModel, features: list[tuple[str, str]], first: bool) -> sql.Composable:
    """One statement of a chunk: the row ids (to align statements), the first statement's
    prediction and label columns, and the given features' columns."""
    columns = [sql.SQL("array_send(array_agg(p.id))")]
    if first:
        columns += [
            sql.SQL(text)
            for text in (
                "array_send(array_agg(p.version_id))",
                "array_agg(p.segment)",
                "array_send(array_agg(extract(epoch FROM date_trunc('hour', p.timestamp))::int8))",
                "array_send(array_agg(coalesce(p.score, 'NaN')))",
                "array_send(array_agg(CASE WHEN l.outcome IS NULL THEN 'NaN'::float8 "
                "WHEN l.outcome = %(positive)s THEN 1::float8 ELSE 0::float8 END))",
                "array_send(array_agg(coalesce(l.delay_s, 'NaN')))",
                "array_send(array_agg(CASE WHEN p.prediction = %(positive)s THEN 1::float8 "
                "ELSE 0::float8 END))",
                "array_send(array_agg(CASE WHEN l.correct IS NULL THEN 'NaN'::float8 "
                "WHEN l.correct THEN 1::float8 ELSE 0::float8 END))",
                "array_send(array_agg(coalesce(p.prediction_num, 'NaN')))",
                "array_send(array_agg(coalesce(l.outcome_num, 'NaN')))",
            )
        ]
        if model.task == Task.MULTICLASS:
            columns += [sql.SQL("array_agg(l.outcome)"), sql.SQL("array_agg(p.prediction)")]
    columns += [feature_column(name, kind) for name, kind in features]
    record = [
        sql.SQL("{} jsonb").format(sql.Identifier(name))
        for name in sorted({name for name, _ in features})
        if 0 < len(name.encode()) <= MAX_IDENTIFIER_BYTES
    ]
    lateral = sql.SQL("")
    if record:
        lateral = sql.SQL(
            "LEFT JOIN LATERAL jsonb_to_record(CASE WHEN jsonb_typeof(p.features) = 'object' "
            "THEN p.features END) AS x({}) ON true"
        ).format(sql.SQL(", ").join(record))
    return sql.SQL(
        """SELECT {columns}
        FROM monitoring_prediction p LEFT JOIN monitoring_label l ON l.prediction_id = p.id
            -- the row's own label: a label left by a deleted prediction whose id was given
            -- again (labels have no foreign key) is another model's, or another hour's
            AND l.model_id = p.model_id AND l.hour = date_trunc('hour', p.timestamp)
        {lateral}
        WHERE p.model_id = %(model)s AND p.timestamp >= %(low)s AND p.timestamp < %(high)s
            AND (%(contiguous)s OR date_trunc('hour', p.timestamp) = ANY(%(hours)s))"""
    ).format(columns=sql.SQL(", ").join(columns), lateral=lateral)


def rows_select(
    *, model: MLModel, hours: list[datetime], bins: dict[int, dict[str, Bins]], positive: str
) -> ChunkRows:
    """The chunk's rows from PostgreSQL, in the order of their ids."""
    features = chunk_features(bins)
    params = {
        "model": model.pk,
        "hours": hours,
        "low": min(hours),
        "high": max(hours) + HOUR,
        # Contiguous hours need no test per row against the list of hours.
        "contiguous": len(hour_ranges(hours)) == 1,
        "positive": positive,
    }
    batches = [
        features[i : i + FEATURES_PER_STATEMENT]
        for i in range(0, max(len(features), 1), FEATURES_PER_STATEMENT)
    ]
    rows = None
    connection.ensure_connection()
    # A cursor of psycopg's own, for results in binary: the arrays arrive as PostgreSQL sends
    # them, not as hex text (Django's cursor binds on the client, which answers in text).
    with psycopg.Cursor(connection.connection) as cursor, hashing(cursor):
        for number, batch in enumerate(batches):
            cursor.execute(statement(model, batch, first=number == 0), params, binary=True)
            ids, *values = cursor.fetchone()
            ids = binary_array(ids, ">i8")
            order = np.argsort(ids, kind="stable")
            if rows is None:
                rows, values = first_columns(model, values, order)
                row_ids = ids[order]
            feature_columns(rows, batch, values, order)
        if model.task == Task.MULTICLASS:
            class_scores_attach(rows, row_ids, *class_scores_fetch(cursor, params))
        cursor.execute(LABEL_VALUES_SELECT, params)
        ids, names, numbers = cursor.fetchone()
        ids, numbers = binary_array(ids, ">i8"), binary_array(numbers, ">f8")
        rows.values = label_values_of(row_ids, ids, np.array(names or [], dtype=object), numbers)
    return rows


# Every (row, value name, number) of the business values of the chunk's rows' own labels.
# Read from the labels that have values, found by their own model and hour: most models have
# none, and a scan from the predictions would look up every label for nothing.
LABEL_VALUES_SELECT = """SELECT array_send(array_agg(p.id)), array_agg(e.key),
        array_send(array_agg((e.value #>> '{}')::float8))
    FROM monitoring_label l
    JOIN monitoring_prediction p ON p.id = l.prediction_id AND p.model_id = l.model_id
        AND date_trunc('hour', p.timestamp) = l.hour
    CROSS JOIN LATERAL jsonb_each(l."values") e
    WHERE l.model_id = %(model)s AND l.hour >= %(low)s AND l.hour < %(high)s
        AND (%(contiguous)s OR l.hour = ANY(%(hours)s))
        AND jsonb_typeof(l."values") = 'object'
        AND p.model_id = %(model)s AND p.timestamp >= %(low)s AND p.timestamp < %(high)s"""


def label_values_of(
    row_ids: np.ndarray, ids: np.ndarray, names: np.ndarray, numbers: np.ndarray
) -> LabelValues:
    """(prediction id, name, number) triples as the rows' `LabelValues`, ``row_ids`` being
    the rows' ids in ascending order; triples of other rows are dropped."""
    position = np.searchsorted(row_ids, ids)
    inside = position < row_ids.size
    inside[inside] = row_ids[position[inside]] == ids[inside]
    return LabelValues.of(position[inside], names[inside], numbers[inside])


# Every (row, class, score) of the chunk's scored rows: one row of three arrays.
CLASS_SCORES_SELECT = """SELECT array_send(array_agg(p.id)), array_agg(e.key),
        array_send(array_agg(CASE WHEN jsonb_typeof(e.value) = 'number'
            THEN (e.value)::float8 ELSE 'NaN'::float8 END))
    FROM monitoring_prediction p
    CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(p.scores) = 'object'
        THEN p.scores END) e
    WHERE p.model_id = %(model)s AND p.timestamp >= %(low)s AND p.timestamp < %(high)s
        AND (%(contiguous)s OR date_trunc('hour', p.timestamp) = ANY(%(hours)s))"""


def class_scores_attach(
    rows: ChunkRows, row_ids: np.ndarray, ids: np.ndarray, names: np.ndarray, scores: np.ndarray
) -> None:
    """Spread (prediction id, class, score) triples into the rows' matrix of class scores,
    ``row_ids`` being the rows' ids in ascending order; triples of other rows are dropped."""
    position = np.searchsorted(row_ids, ids)
    inside = position < row_ids.size
    inside[inside] = row_ids[position[inside]] == ids[inside]
    position, names, scores = position[inside], names[inside], scores[inside]
    codes, classes = pd.factorize(pd.Series(names, dtype=object), sort=True)
    matrix = np.full((row_ids.size, len(classes)), np.nan)
    matrix[position, codes] = scores
    scored = np.zeros(row_ids.size, dtype=bool)
    scored[position] = True
    matrix[scored] = np.nan_to_num(matrix[scored], nan=0.0)
    rows.class_scores, rows.classes = matrix, [str(name) for name in classes]


def first_columns(model: MLModel, values: list, order: np.ndarray) -> tuple[ChunkRows, list]:
    version, segment, hour, score, actual, delay, predicted, correct, *rest = values
    prediction_num, outcome_num, *rest = rest
    rows = ChunkRows(
        version=binary_array(version, ">i8")[order],
        segment=np.array(segment or [], dtype=object)[order],
        hour=binary_array(hour, ">i8")[order],
        score=binary_array(score, ">f8")[order],
        actual=binary_array(actual, ">f8")[order],
        delay=binary_array(delay, ">f8")[order],
        predicted=binary_array(predicted, ">f8")[order],
        correct=binary_array(correct, ">f8")[order],
        prediction_num=binary_array(prediction_num, ">f8")[order],
        outcome_num=binary_array(outcome_num, ">f8")[order],
    )
    if model.task == Task.MULTICLASS:
        outcome, prediction, *rest = rest
        rows.outcome = np.array(outcome or [], dtype=object)[order]
        rows.prediction = np.array(prediction or [], dtype=object)[order]
    return rows, rest


def feature_columns(
    rows: ChunkRows, features: list[tuple[str, str]], values: list, order: np.ndarray
) -> None:
    for (name, kind), value in zip(features, values, strict=True):
        if kind == "numerical":
            rows.numbers[name] = binary_array(value, ">f8")[order]
        elif kind == UNKNOWN:
            rows.present[name] = binary_array(value, ">f8")[order] == 1.0
        else:
            texts = np.array(value or [], dtype=object)[order]
            rows.categories[name] = categories_of(texts, parse=json.loads)


# --- SQLite (and any database): through the ORM ---


def number_range_check(name: str, column: list) -> None:
    """Fail the chunk on a number a float cannot hold, as PostgreSQL's float8 cast fails the
    statement: both readers leave such an hour out, recorded, rather than bin it."""
    bad = out_of_range_count(column)
    if bad:
        raise ValueError(f"feature {name!r} holds {bad} numbers outside float range")


def own_label() -> FilteredRelation:
    """A prediction's label, only if it is the prediction's own: labels have no foreign key,
    so one left by a deleted prediction whose id was given again (another model's, another
    hour's) must not be read as this row's outcome."""
    return FilteredRelation(
        "label", condition=Q(label__model_id=F("model_id"), label__hour=TruncHour("timestamp"))
    )


def rows_load(
    *, model: MLModel, hours: list[datetime], bins: dict[int, dict[str, Bins]], positive: str
) -> ChunkRows:
    """The chunk's rows through the ORM, each row's features parsed in Python."""
    records = list(
        Prediction.objects.filter(
            model_id=model.pk, timestamp__gte=min(hours), timestamp__lt=max(hours) + HOUR
        )
        .annotate(hour=TruncHour("timestamp"), own=own_label())
        .filter(hour__in=hours)
        .order_by("id")
        .values_list(
            "id",
            "version_id",
            "segment",
            "hour",
            "prediction",
            "score",
            "features",
            "own__outcome",
            "own__delay_s",
            "own__correct",
            "prediction_num",
            "own__outcome_num",
            "own__values",
        )
    )
    columns = list(zip(*records, strict=True)) if records else [()] * 13
    row_ids, version, segment, hour, prediction, score, features, outcome, delay, *rest = columns
    correct, prediction_num, outcome_num, label_values = rest
    actual = [np.nan if value is None else float(value == positive) for value in outcome]
    rows = ChunkRows(
        version=np.array(version, dtype=np.int64),
        segment=np.array(segment, dtype=object),
        hour=np.array([int(h.timestamp()) for h in hour], dtype=np.int64),
        score=np.array(score, dtype=float),
        actual=np.array(actual, dtype=float),
        delay=np.array(delay, dtype=float),
        predicted=np.array([float(value == positive) for value in prediction], dtype=float),
        correct=np.array([np.nan if c is None else float(c) for c in correct], dtype=float),
        prediction_num=np.array(prediction_num, dtype=float),
        outcome_num=np.array(outcome_num, dtype=float),
    )
    rows.values = label_values_listed(label_values)
    if model.task == Task.MULTICLASS:
        rows.outcome = np.array(outcome, dtype=object)
        rows.prediction = np.array(prediction, dtype=object)
        params = {
            "model": model.pk,
            "hours": hours,
            "low": min(hours),
            "high": max(hours) + HOUR,
            "contiguous": True,  # rows of other hours are dropped by their ids
        }
        with connection.cursor() as cursor:
            fetched = class_scores_fetch(cursor, params)
        class_scores_attach(rows, np.array(row_ids, dtype=np.int64), *fetched)
    documents = [f if isinstance(f, dict) else {} for f in features]
    for name, kind in chunk_features(bins):
        column = [document.get(name) for document in documents]
        if kind == "numerical":
            number_range_check(name, column)
            rows.numbers[name] = numeric_values(column)
        elif kind == UNKNOWN:
            rows.present[name] = np.array([not is_missing(v) for v in column], dtype=bool)
        else:
            rows.categories[name] = categories_of(column)
    return rows


def label_values_listed(documents) -> LabelValues:
    """The rows' labels' values (a dict per row, None without) as `LabelValues`."""
    triples = [
        (i, name, float(number))
        for i, document in enumerate(documents)
        if isinstance(document, dict)
        for name, number in document.items()
    ]
    if not triples:
        return LabelValues.empty()
    row, names, numbers = zip(*triples, strict=True)
    return LabelValues.of(np.array(row), np.array(names, dtype=object), np.array(numbers))


def class_scores_fetch(cursor, params: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction id, class, score) of every class score of the rows in [low, high) (and in
    `hours` unless `contiguous`), as three arrays: PostgreSQL sends them as arrays, SQLite
    lists them through its `json_each`."""
    if is_postgres():
        cursor.execute(CLASS_SCORES_SELECT, params)
        ids, names, scores = cursor.fetchone()
        return (
            binary_array(ids, ">i8"),
            np.array(names or [], dtype=object),
            binary_array(scores, ">f8"),
        )
    cursor.execute(
        """SELECT p.id, e.key, CASE WHEN e.type IN ('real', 'integer') THEN e.value END
        FROM monitoring_prediction p, json_each(p.scores) e
        WHERE p.model_id = %s AND p.timestamp >= %s AND p.timestamp < %s
            AND json_type(p.scores) = 'object'""",
        [params["model"], db_datetime(params["low"]), db_datetime(params["high"])],
    )
    triples = cursor.fetchall()
    ids, names, scores = zip(*triples, strict=True) if triples else ((), (), ())
    values = np.array([np.nan if s is None else s for s in scores], dtype=float)
    return np.array(ids, dtype=np.int64), np.array(names, dtype=object), values
