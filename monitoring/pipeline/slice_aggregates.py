"""Per-slice sums for `explain`, on the one-pass path: each feature's slices of a chunk at once.

A slice is a numerical feature's decile (on the model's `SliceBins`, frozen once per model and
feature) or a categorical feature's category, plus `(missing)`; the sums are those of
`HourlyAggregate` (`SLICE_SUM_FIELDS`), so any metric computed from hourly sums is computed
per slice the same way. Row i of the chunk's columns contributes its value of each sum
(`row_sums`), and NumPy adds them up per (group, slice) key (`Binned`), for all groups of the
chunk at once.

Size: a (version, segment, hour) gets at most 11 rows per numerical feature (10 deciles and
missing) and `MAX_CATEGORIES` + 2 per categorical feature (its most frequent categories in
that hour, `(other)`, `(missing)`); a day row sums its hours (docs/operations.md).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from django.db import connection

from common.sql import db_datetime, is_postgres
from common.time import DAY
from factory.models import MLModel
from monitoring.models import (
    SLICE_SUM_FIELDS,
    FeatureBins,
    Period,
    SliceAggregate,
    SliceBins,
)
from monitoring.pipeline.bins import UNKNOWN, Bins
from monitoring.pipeline.chunk_rows import ChunkRows
from monitoring.pipeline.sketch_groups import Binned, Groups

MISSING = "(missing)"
OTHER = "(other)"
MAX_CATEGORIES = 50  # stored per feature and (version, segment, hour); the rest is (other)
EPS = float(np.finfo(np.float64).eps)  # log loss clips scores as the hourly sums do
DECILES = 10


# --- the slices of a feature, frozen once per model ---


def decile_edges_of(bins: FeatureBins) -> np.ndarray:
    """A version's fine bins reduced to deciles: its reference deciles when it has them, else
    every tenth of its fine edges (the fine edges are quantiles of its first days, so these
    are its deciles to within one fine bin)."""
    if bins.deciles:
        return np.unique(np.frombuffer(bytes(bins.deciles), "<f8"))
    edges = np.frombuffer(bytes(bins.edges), "<f8")
    if edges.size <= DECILES - 1:
        return np.unique(edges)
    positions = np.round(np.arange(1, DECILES) * (edges.size - 1) / DECILES).astype(int)
    return np.unique(edges[positions])


def slice_bins_ensure(model: MLModel, names: set[str]) -> dict[str, SliceBins]:
    """The model's slices of the named features, freezing those not frozen yet from the
    first version's bins (lowest id) of a known kind; features of unknown kind wait."""
    stored = {row.name: row for row in SliceBins.objects.filter(model=model, name__in=names)}
    todo = names - stored.keys()
    if not todo:
        return stored
    first: dict[str, FeatureBins] = {}
    candidates = FeatureBins.objects.filter(model=model, name__in=todo).exclude(kind=UNKNOWN)
    for row in candidates.order_by("id"):
        first.setdefault(row.name, row)
    for name, row in sorted(first.items()):
        edges = decile_edges_of(row) if row.kind == "numerical" else np.array([])
        stored[name], _ = SliceBins.objects.get_or_create(
            model=model,
            name=name,
            defaults={"kind": row.kind, "edges": edges.astype("<f8").tobytes()},
        )
    return stored


def interval_labels(edges: np.ndarray) -> list[str]:
    """`[a, b)` of each decile on the interior edges, the outer two open-ended."""
    bounds = ["-inf", *(f"{edge:.6g}" for edge in edges.tolist()), "inf"]
    first = [f"(-inf, {bounds[1]})"] if edges.size else ["(-inf, inf)"]
    middle = [f"[{bounds[i]}, {bounds[i + 1]})" for i in range(1, edges.size)]
    last = [f"[{bounds[-2]}, inf)"] if edges.size else []
    return first + middle + last


# --- each row's share of every sum ---


def row_sums(rows: ChunkRows) -> dict[str, np.ndarray]:
    """Per row, what it adds to each of `SLICE_SUM_FIELDS` (the SQL of `scalar_sums`, on the
    chunk's columns): counts as booleans, sums as floats (0 where the row adds nothing)."""
    scored = ~np.isnan(rows.score)
    judged = ~np.isnan(rows.actual)
    actual = rows.actual == 1.0
    predicted = rows.predicted == 1.0
    score = np.where(scored, rows.score, 0.0)
    probabilistic = judged & scored
    clipped = np.clip(score, EPS, 1 - EPS)
    log_loss = np.where(actual, -np.log(clipped), -np.log(np.clip(1 - score, EPS, 1 - EPS)))
    log_loss = np.where(probabilistic, log_loss, 0.0)
    brier = np.where(probabilistic, (score - actual) ** 2, 0.0)
    has_prediction = ~np.isnan(rows.prediction_num)
    prediction = np.where(has_prediction, rows.prediction_num, 0.0)
    regressed = has_prediction & ~np.isnan(rows.outcome_num)
    error = np.where(regressed, rows.prediction_num - rows.outcome_num, 0.0)
    with_ape = regressed & (rows.outcome_num != 0)
    ape = np.where(with_ape, np.abs(error) / np.where(with_ape, np.abs(rows.outcome_num), 1), 0)
    return {
        "predictions": np.ones(len(rows), dtype=bool),
        "scored": scored,
        "score_sum": score,
        "score_sq_sum": score * score,
        "labelled": ~np.isnan(rows.delay),
        "correct": rows.correct == 1.0,
        "judged": judged,
        "tp": judged & actual & predicted,
        "fp": judged & ~actual & predicted,
        "fn": judged & actual & ~predicted,
        "predicted_positive": predicted,
        "predicted_num": has_prediction,
        "prediction_sum": prediction,
        "prediction_sq_sum": prediction * prediction,
        "probabilistic": probabilistic,
        "log_loss_sum": log_loss,
        "log_loss_sq_sum": log_loss * log_loss,
        "brier_sum": brier,
        "brier_sq_sum": brier * brier,
        "regressed": regressed,
        "error_sum": error,
        "error_sq_sum": error * error,
        "abs_error_sum": np.abs(error),
        "error_fourth_sum": error**4,
        "ape_n": with_ape,
        "ape_sum": ape,
        "ape_sq_sum": ape * ape,
    }


# --- a feature's slice of every row ---


def numerical_slices(values: np.ndarray | None, edges: np.ndarray, size: int):
    """Each row's decile (`[a, b)`: a value on an edge opens the next one), missing last."""
    if values is None:
        return np.full(size, edges.size + 1), [*interval_labels(edges), MISSING]
    index = np.searchsorted(edges, values, side="right")
    index[np.isnan(values)] = edges.size + 1
    return index, [*interval_labels(edges), MISSING]


def categorical_slices(groups: Groups, column, size: int):
    """Each row's category, those beyond a group's `MAX_CATEGORIES` most frequent as
    `(other)`; `(other)` and `(missing)` last."""
    if column is None:
        return np.full(size, 1), [OTHER, MISSING]
    keys = column.keys
    other, missing = len(keys), len(keys) + 1
    present = column.codes >= 0
    binned = Binned.of(groups.of_row[present], column.codes[present], max(len(keys), 1))
    counts = binned.counts()
    order = np.lexsort((binned.index, -counts, binned.group))  # per group, most frequent first
    starts = np.searchsorted(binned.group[order], binned.group[order], side="left")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size) - starts
    kept = np.where(rank < MAX_CATEGORIES, binned.index, other)
    index = np.full(size, missing)
    index[present] = kept[binned.inverse]
    return index, [*keys, OTHER, MISSING]


def feature_slices(groups: Groups, rows: ChunkRows, bins: SliceBins):
    if bins.kind == "numerical":
        edges = np.frombuffer(bytes(bins.edges), "<f8")
        return numerical_slices(rows.numbers.get(bins.name), edges, len(rows))
    return categorical_slices(groups, rows.categories.get(bins.name), len(rows))


# --- the chunk's rows, written ---

SliceRow = tuple  # (version id, segment, hour, feature, slice, *sums in SLICE_SUM_FIELDS order)


def chunk_slices(
    *, model: MLModel, bins: dict[int, dict[str, Bins]], rows: ChunkRows
) -> list[SliceRow]:
    """Every feature's slice rows of the chunk: the sums per (group, slice), all at once."""
    if not len(rows):
        return []
    names = {name for one in bins.values() for name, b in one.items() if b.kind != UNKNOWN}
    frozen = slice_bins_ensure(model, names)
    groups = Groups.of(rows)
    contributions = row_sums(rows)
    out: list[SliceRow] = []
    for name in sorted(frozen):
        index, labels = feature_slices(groups, rows, frozen[name])
        binned = Binned.of(groups.of_row, index, len(labels))
        sums = [binned.counts(contributions[field]).tolist() for field in SLICE_SUM_FIELDS]
        for entry, (g, i) in enumerate(
            zip(binned.group.tolist(), binned.index.tolist(), strict=True)
        ):
            out.append((*groups.keys[g], name, labels[i], *(column[entry] for column in sums)))
    return out


COLUMNS = ("version_id", "segment", "start", "feature", "slice", *SLICE_SUM_FIELDS)


def slice_rows_write(model: MLModel, period: str, rows: list[SliceRow]) -> None:
    """Insert slice rows: COPY on PostgreSQL, bulk_create elsewhere."""
    if not is_postgres():
        SliceAggregate.objects.bulk_create(
            [
                SliceAggregate(model=model, period=period, **dict(zip(COLUMNS, row, strict=True)))
                for row in rows
            ],
            1000,
        )
        return
    with connection.cursor() as cursor:
        sql = f"COPY monitoring_sliceaggregate (model_id, period, {', '.join(COLUMNS)}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row((model.pk, period, *row))


def chunk_slices_write(
    *, model: MLModel, hours: list[datetime], bins: dict[int, dict[str, Bins]], rows: ChunkRows
) -> None:
    """Replace the hours' slice rows with those of their rows (the caller's savepoint)."""
    SliceAggregate.objects.filter(model=model, period=Period.HOUR, start__in=hours).delete()
    slice_rows_write(model, Period.HOUR, chunk_slices(model=model, bins=bins, rows=rows))


def day_of(column: str) -> str:
    if is_postgres():
        return f"date_trunc('day', {column})"
    return f"strftime('%%Y-%%m-%%d 00:00:00', {column})"


def slice_days_refresh(model: MLModel, days: list[datetime]) -> None:
    """Rewrite the days' slice rows as the sums of their hour rows, in the database."""
    SliceAggregate.objects.filter(model=model, period=Period.DAY, start__in=days).delete()
    if not days:
        return
    sums = ", ".join(f"SUM({field})" for field in SLICE_SUM_FIELDS)
    columns = ", ".join(SLICE_SUM_FIELDS)
    day = day_of("start")
    with connection.cursor() as cursor:
        for first in days:
            cursor.execute(
                f"""INSERT INTO monitoring_sliceaggregate
                    (model_id, version_id, segment, period, start, feature, slice, {columns})
                SELECT model_id, version_id, segment, %s, {day}, feature, slice, {sums}
                FROM monitoring_sliceaggregate
                WHERE model_id = %s AND period = %s AND start >= %s AND start < %s
                GROUP BY model_id, version_id, segment, {day}, feature, slice""",
                [Period.DAY, model.pk, Period.HOUR, db_datetime(first), db_datetime(first + DAY)],
            )
