"""The hourly sketches of many hours at once, read by PostgreSQL in one pass (set-based).

The pandas path (monitoring.pipeline.sketches) reads every prediction's `features` JSON into Python,
an hour at a time. Here one statement per chunk of dirty hours groups the rows by version,
segment and hour and, per group, aggregates what the sketches are made of: the judged scores
and whether each outcome is the positive class, label delays, (outcome, prediction) pairs,
and per feature its JSON numbers (a float8[], sent in binary) or its non-null values as JSON
text. The database does the JSON extraction; Python receives a few arrays per group, not a
dict per row, and bins them with the same functions as the pandas path (`group_sketches`),
so both write the same sketches. (Binning in SQL, a row per value and bin, was slower: the
grouping of millions of (value, bin) rows cost more than sending 8 bytes a value.)
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import contextmanager
from datetime import datetime

import numpy as np
from django.db import connection

from common.time import HOUR
from factory.models import MLModel, Task
from monitoring.pipeline.bins import UNKNOWN, Bins
from monitoring.pipeline.sketch_groups import GroupColumns, group_sketches
from monitoring.stats.profile import category_key

Group = tuple[int, str, datetime]  # version id, segment, hour

# Group by hashing, in memory: freshly loaded rows have no statistics yet, and the planner
# would otherwise sort a chunk's rows on disk by their text keys.
HASHING = {"work_mem": "256MB", "enable_sort": "off"}


@contextmanager
def planner_settings(cursor, settings: dict[str, str]):
    """Settings for this transaction's next statements, restored afterwards.

    Not restored when the statement fails: the transaction is aborted then (a query there
    would hide the error), and rolling back to the chunk's savepoint undoes them anyway."""
    before = {}
    for name, value in settings.items():
        cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
        before[name] = cursor.fetchone()[0]
    yield
    for name, value in before.items():
        cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def chunk_sql(model: MLModel, bins: dict[int, dict[str, Bins]]) -> tuple[str, list[tuple]]:
    """The statement of a chunk, and the (feature name, kind) of its feature columns: each
    kind a feature has in any version (versions may differ), read once for all versions.

    Feature names are parameters (never spliced into the SQL). A JSON value's type decides:
    numbers go to a float8[] for numerical features; anything not null counts as present,
    and categorical features send it as JSON text, keyed by `category_key` in Python.
    """
    judged = "l.outcome IS NOT NULL"
    columns = [
        "array_send(array_agg(l.delay_s) FILTER (WHERE l.prediction_id IS NOT NULL))",
        f"array_send(array_agg(p.score) FILTER (WHERE {judged} AND p.score IS NOT NULL))",
        f"array_send(array_agg((l.outcome = %(positive)s)::int::float8) "
        f"FILTER (WHERE {judged} AND p.score IS NOT NULL))",
    ]
    if model.task == Task.MULTICLASS:
        columns += [
            f"array_agg(l.outcome) FILTER (WHERE {judged})",
            f"array_agg(p.prediction) FILTER (WHERE {judged})",
        ]
    features = sorted({(b.name, b.kind) for one in bins.values() for b in one.values()})
    for i, (_, kind) in enumerate(features):
        value = f"(p.features -> %(f{i})s)"
        if kind == "numerical":
            columns.append(
                f"array_send(array_agg({value}::float8) "
                f"FILTER (WHERE jsonb_typeof({value}) = 'number'))"
            )
        elif kind == UNKNOWN:
            columns.append(f"count(*) FILTER (WHERE jsonb_typeof({value}) <> 'null')")
        else:
            columns.append(
                f"array_agg({value}::text) FILTER (WHERE jsonb_typeof({value}) <> 'null')"
            )
    sql = f"""
    SELECT p.version_id, p.segment, date_trunc('hour', p.timestamp), count(*),
        {", ".join(columns)}
    FROM monitoring_prediction p LEFT JOIN monitoring_label l ON l.prediction_id = p.id
    WHERE p.model_id = %(model)s AND p.timestamp >= %(low)s AND p.timestamp < %(high)s
        AND date_trunc('hour', p.timestamp) = ANY(%(hours)s::timestamptz[])
    GROUP BY 1, 2, 3
    """
    return sql, features


# `array_send` of a float8[]: ndim, flags, element type, then per dimension its size and lower
# bound; then each element as its length (8) and the big-endian value.
ELEMENT = np.dtype([("length", ">i4"), ("value", ">f8")])


def float_array(data: bytes | None) -> np.ndarray:
    """A float8[] sent in PostgreSQL's binary array format (float arrays cross the wire as
    bytes, not as text numbers to parse); NULL (no element) is empty."""
    if data is None or int.from_bytes(data[:4], "big") == 0:
        return np.empty(0)
    count = int.from_bytes(data[12:16], "big")
    return np.frombuffer(data, ELEMENT, count, offset=20)["value"].astype(float)


def row_columns(row: tuple, model: MLModel, bins: dict[str, Bins], features: list[tuple]):
    """A result row of `chunk_sql` as the `GroupColumns` of its group."""

    rows, delays, scores, actual, *rest = row
    pairs: Counter = Counter()
    if model.task == Task.MULTICLASS:
        outcomes, predictions, *rest = rest
        pairs = Counter(zip(outcomes or [], predictions or [], strict=True))
    numbers, categories, present = {}, {}, {}
    for (name, kind), value in zip(features, rest, strict=True):
        if name not in bins or bins[name].kind != kind:
            continue  # a column for another version
        if kind == "numerical":
            numbers[name] = float_array(value)
        elif kind == UNKNOWN:
            present[name] = value
        else:
            texts = Counter(value or [])
            present[name] = sum(texts.values())
            counts: Counter = Counter()
            for text, count in texts.items():
                counts[category_key(json.loads(text))] += count
            categories[name] = counts
    return GroupColumns(
        rows=rows,
        scores=float_array(scores),
        actual=float_array(actual) == 1.0,
        pairs=pairs,
        delays=float_array(delays),
        numbers=numbers,
        categories=categories,
        present=present,
    )


def chunk_sketches(
    *, model: MLModel, hours: list[datetime], bins: dict[int, dict[str, Bins]], positive: str
) -> dict[Group, list[tuple[str, str, int, int, bytes]]]:
    """Every sketch of the given hours, keyed by (version id, segment, hour)."""

    out = {}
    base = {
        "model": model.pk,
        "hours": hours,
        "low": min(hours),
        "high": max(hours) + HOUR,
        "positive": positive,
    }
    sql, features = chunk_sql(model, bins)
    params = base | {f"f{i}": name for i, (name, _) in enumerate(features)}
    with connection.cursor() as cursor, planner_settings(cursor, HASHING):
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for version_id, segment, hour, *rest in rows:
        version_bins = bins.get(version_id, {})
        group = row_columns(rest, model, version_bins, features)
        out[(version_id, segment, hour)] = group_sketches(
            model=model, bins=version_bins, group=group
        )
    return out
