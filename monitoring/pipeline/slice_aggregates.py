"""Per-slice sums for `explain`, on the one-pass path: each feature's slices of a chunk at once.

A slice is a numerical feature's decile (on the model's `SliceBins`, frozen once per model and
feature) or a categorical feature's category, plus `(missing)`; the sums are those of
`HourlyAggregate` (`SLICE_SUM_FIELDS`), so any metric computed from hourly sums is computed
per slice the same way. Row i of the chunk's columns contributes its value of each sum
(`row_sums`), and NumPy adds them up per (group, slice) key (`Binned`), for all groups of the
chunk at once. Beside them, each slice's judged scores in `SCORE_BINS` equal bins of [0, 1]
by outcome (`SCORE_FIELDS`: positives, then negatives, per bin), for its ROC AUC: a row adds
1 to one of them (`score_columns`), so they are a sparse matrix (a slice of an hour holds a
few of the 100), stored as (entry, column, count) triples. A slice's bins are complete when
they count its `probabilistic` rows (judged and scored: the same rows); those of days
aggregated before the bins existed count none (`scores_complete`). Such a day updated an
hour at a time becomes complete once each of its hours has been aggregated again (its
stored sums, minus each old hour's entries, which had no bins, plus the new ones).

Two more sparse parts, keyed by text that differs from chunk to chunk (`Keyed`): the labels'
business values (`value:NAME`: each name's count, sum and sum of squares, and the labelled
rows counted, which tells a complete slice from one aggregated before them:
`values_complete`), and a multiclass slice's (outcome, prediction) counts (`macro_f1`;
complete when they count its judged rows: `confusion_complete`). A slice of an hour holds few
names and few pairs of classes, so they are stored as (entry, key, sum) triples, the keys once
per document.

Stored a day per row (`SliceDay`): the day's entries per hour, and their sums per day, each
one compressed document, written for every day a chunk touches. A day whose hours are not
all in the chunk keeps its other hours as stored.

Size: a (version, segment, hour) gets at most 11 entries per numerical feature (10 deciles
and missing) and `MAX_CATEGORIES` + 2 per categorical feature (its most frequent categories
in that hour, `(other)`, `(missing)`); a day's sums at most as many per (version, segment)
(docs/operations.md). Each entry's score bins add 13 bytes per non-empty bin, at most one
per judged, scored prediction it holds and at most 100; its values 16 bytes per cell (one
for its labelled rows, 3 per value name its labels carry), its confusion counts 16 bytes per
pair of classes it holds.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from django.db import connection
from scipy import sparse

from common.sql import is_postgres
from common.time import day_floor
from factory.models import MLModel
from monitoring.models import (
    SLICE_SUM_FIELDS,
    FeatureBins,
    SliceBins,
    SliceDay,
    SliceHour,
)
from monitoring.pipeline.bins import UNKNOWN, Bins
from monitoring.pipeline.chunk_rows import ChunkRows
from monitoring.pipeline.sketch_groups import Binned, Groups
from monitoring.stats.auc import coarse_bin_index
from monitoring.stats.codec import pack, unpack

MISSING = "(missing)"
OTHER = "(other)"
MAX_CATEGORIES = 50  # stored per feature and (version, segment, hour); the rest is (other)
EPS = float(np.finfo(np.float64).eps)  # log loss clips scores as the hourly sums do
DECILES = 10
# A slice's ROC AUC: its judged scores per outcome in this many equal bins (the hourly
# sketches' 1,000 grouped by 20), 100 sparse columns beside the 27 sums.
SCORE_BINS = 50
SCORE_FIELDS = tuple(
    f"{outcome}_{i:02d}" for outcome in ("positives", "negatives") for i in range(SCORE_BINS)
)


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


def score_columns(rows: ChunkRows) -> np.ndarray:
    """Per row, the column of `SCORE_FIELDS` it adds 1 to (its outcome's, at its score's
    bin), -1 unless judged and scored (the rows of the hourly score sketches)."""
    probabilistic = ~np.isnan(rows.actual) & ~np.isnan(rows.score)
    index = coarse_bin_index(np.where(probabilistic, rows.score, 0.0), SCORE_BINS)
    index = index + np.where(rows.actual == 1.0, 0, SCORE_BINS)
    return np.where(probabilistic, index, -1)


def score_counts(entry_of_row: np.ndarray, size: int, columns: np.ndarray) -> sparse.csr_matrix:
    """(size, len(SCORE_FIELDS)) counts: row i adds 1 at (entry_of_row[i], columns[i])."""
    counted = columns >= 0
    ones = np.ones(int(counted.sum()))
    cells = (entry_of_row[counted], columns[counted])
    return sparse.csr_matrix((ones, cells), shape=(size, len(SCORE_FIELDS)))


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


# --- the chunk's slices, summed ---


@dataclass
class Keyed:
    """Sums per entry under keys that differ from chunk to chunk (a business value's name and
    statistic, a pair of classes): a sparse (entries, keys) matrix and its columns' keys."""

    matrix: sparse.csr_matrix
    keys: list[tuple[str, str]]

    @classmethod
    def empty(cls, size: int) -> Keyed:
        return cls(sparse.csr_matrix((size, 0)), [])

    @classmethod
    def of(cls, entry: np.ndarray, size: int, column: np.ndarray, weight, keys) -> Keyed:
        """Entry ``entry[i]`` adds ``weight[i]`` under ``keys[column[i]]``."""
        cells = (entry, column)
        return cls(sparse.csr_matrix((weight, cells), shape=(size, len(keys))), list(keys))

    def __getitem__(self, index) -> Keyed:
        return Keyed(self.matrix[index], self.keys)

    def __neg__(self) -> Keyed:
        return Keyed(-self.matrix, self.keys)

    def added(self, adding: sparse.csr_matrix) -> Keyed:
        """The entries added up by an `adder` matrix."""
        return Keyed((adding @ self.matrix).tocsr(), self.keys)

    def column(self, key: tuple[str, str]) -> np.ndarray:
        """Each entry's sum under the key (0 where the key is not stored)."""
        if key not in self.keys:
            return np.zeros(self.matrix.shape[0])
        return self.matrix[:, self.keys.index(key)].toarray().ravel()

    @classmethod
    def concat(cls, parts: list[Keyed]) -> Keyed:
        """The parts' entries one after the other, on the union of their keys."""
        keys = sorted({key for part in parts for key in part.keys})
        if len(parts) == 1 and parts[0].keys == keys and parts[0].matrix.has_canonical_format:
            return parts[0]  # what the rebuilding below would give
        position = {key: i for i, key in enumerate(keys)}
        matrices = []
        for part in parts:
            coo = part.matrix.tocoo()
            moved = np.array([position[key] for key in part.keys], dtype=np.int64)
            cells = (coo.row, moved[coo.col] if coo.nnz else coo.col)
            shape = (part.matrix.shape[0], len(keys))
            matrices.append(sparse.csr_matrix((coo.data, cells), shape=shape))
        return cls(sparse.vstack(matrices, format="csr"), keys)


# A business value's statistics per entry (its count, sum and sum of squares over the labels
# that hold it), keyed (name, statistic); and the labelled rows they were counted from, under
# LABELLED_KEY: an entry's values are complete when it equals the entry's `labelled`.
VALUE_STATISTICS = ("count", "total", "total_sq")
LABELLED_KEY = ("", "labelled")


@dataclass
class SliceSums:
    """Sums per (version, segment, start, feature, slice), one entry per non-empty slice:
    ``sums`` holds a row per entry, a column per field of `SLICE_SUM_FIELDS`; ``scores`` a
    row per entry, a column per field of `SCORE_FIELDS`; ``values`` the labels' business
    values (keys: (name, one of `VALUE_STATISTICS`), and `LABELLED_KEY`); ``confusion`` the
    multiclass (outcome, prediction) counts (none given: all zero)."""

    version: np.ndarray  # int64
    segment: np.ndarray  # str objects
    start: np.ndarray  # int64, seconds since the epoch
    feature: np.ndarray  # str objects
    slice: np.ndarray  # str objects
    sums: np.ndarray  # float64, (entries, fields)
    scores: sparse.csr_matrix | None = None  # float64 counts, (entries, score fields)
    values: Keyed | None = None
    confusion: Keyed | None = None

    def __post_init__(self):
        if self.scores is None:
            self.scores = sparse.csr_matrix((self.version.size, len(SCORE_FIELDS)))
        self.values = self.values or Keyed.empty(self.version.size)
        self.confusion = self.confusion or Keyed.empty(self.version.size)

    def __len__(self) -> int:
        return self.version.size

    def take(self, index: np.ndarray | slice) -> SliceSums:
        return SliceSums(*(column[index] for column in columns_of(self)))

    @classmethod
    def concat(cls, parts: list[SliceSums]) -> SliceSums:
        if not parts:
            return cls.empty()
        if len(parts) == 1:  # the same, its arrays not copied (no caller changes them)
            part = parts[0]
            keyed = Keyed.concat([part.values]), Keyed.concat([part.confusion])
            return cls(*columns_of(part)[:7], *keyed)
        columns = list(zip(*map(columns_of, parts), strict=True))
        dense = (np.concatenate(each) for each in columns[:6])
        scores = sparse.vstack(columns[6], format="csr")
        return cls(*dense, scores, Keyed.concat(columns[7]), Keyed.concat(columns[8]))

    @classmethod
    def empty(cls) -> SliceSums:
        text = np.array([], dtype=object)
        whole = np.array([], dtype=np.int64)
        return cls(whole, text, whole, text, text, np.zeros((0, len(SLICE_SUM_FIELDS))))


def columns_of(sums: SliceSums) -> tuple:
    return tuple(getattr(sums, f.name) for f in fields(SliceSums))


PROBABILISTIC = SLICE_SUM_FIELDS.index("probabilistic")


def scores_complete(sums: SliceSums) -> np.ndarray:
    """Per entry, whether its score bins count all its judged, scored rows (False for a
    slice with such rows aggregated before the bins were kept)."""
    counted = np.asarray(sums.scores.sum(axis=1)).ravel()
    return np.abs(counted - sums.sums[:, PROBABILISTIC]) < 0.5


LABELLED = SLICE_SUM_FIELDS.index("labelled")
JUDGED = SLICE_SUM_FIELDS.index("judged")


def values_complete(sums: SliceSums) -> np.ndarray:
    """Per entry, whether its business values were counted from all its labelled rows (False
    for a slice with labels aggregated before the slices kept values)."""
    return np.abs(sums.values.column(LABELLED_KEY) - sums.sums[:, LABELLED]) < 0.5


def confusion_complete(sums: SliceSums) -> np.ndarray:
    """Per entry, whether its (outcome, prediction) counts count all its judged rows (False
    for a multiclass slice aggregated before the slices kept them)."""
    counted = np.asarray(sums.confusion.matrix.sum(axis=1)).ravel()
    return np.abs(counted - sums.sums[:, JUDGED]) < 0.5


def chunk_slice_bins(model: MLModel, bins: dict[int, dict[str, Bins]]) -> dict[str, SliceBins]:
    """The slices of the chunk's features of a known kind, frozen first where they are new."""
    names = {name for one in bins.values() for name, b in one.items() if b.kind != UNKNOWN}
    return slice_bins_ensure(model, names)


def chunk_slices(*, frozen: dict[str, SliceBins], rows: ChunkRows) -> SliceSums:
    """Every feature's slices of the chunk's groups (start: the hour): NumPy sums per
    (group, slice), a feature at a time, never a group at a time. No query."""
    if not len(rows):
        return SliceSums.empty()
    groups = Groups.of(rows)
    version = np.array([key[0] for key in groups.keys], dtype=np.int64)
    segment = np.array([key[1] for key in groups.keys], dtype=object)
    start = np.array([int(key[2].timestamp()) for key in groups.keys], dtype=np.int64)
    contributions = row_sums(rows)
    weights = np.column_stack([contributions[field] for field in SLICE_SUM_FIELDS]).astype(float)
    scores = score_columns(rows)
    values, pairs = value_cells(rows), confusion_cells(rows)
    parts = []
    for name in sorted(frozen):
        index, labels = feature_slices(groups, rows, frozen[name])
        binned = Binned.of(groups.of_row, index, len(labels))
        size = binned.group.size
        sums = adder(binned.inverse, size) @ weights
        counts = score_counts(binned.inverse, size, scores)
        keyed = [Keyed.of(binned.inverse[row], size, *rest) for row, *rest in (values, pairs)]
        group = binned.group
        feature = np.full(group.size, name, dtype=object)
        labelled = np.asarray(labels, dtype=object)[binned.index]
        keys = (version[group], segment[group], start[group], feature, labelled)
        parts.append(SliceSums(*keys, sums, counts, *keyed))
    return SliceSums.concat(parts)


# (row, column, weight, keys): row[i] adds weight[i] under keys[column[i]]
Cells = tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, str]]]


def value_cells(rows: ChunkRows) -> Cells:
    """What each label's business values add: 1, the number and its square under the name's
    `VALUE_STATISTICS`; and each labelled row 1 under `LABELLED_KEY` (the rows counted)."""
    values = rows.values
    names = len(values.names)
    labelled = np.flatnonzero(~np.isnan(rows.delay))
    row = np.concatenate([np.repeat(values.row, 3), labelled])
    statistic = np.tile(np.arange(3), values.row.size)
    column = np.concatenate(
        [3 * np.repeat(values.code, 3) + statistic, np.full(labelled.size, 3 * names)]
    )
    number = values.number
    weight = np.concatenate(
        [
            np.column_stack([np.ones_like(number), number, number * number]).ravel(),
            np.ones(labelled.size),
        ]
    )
    keys = [(name, statistic) for name in values.names for statistic in VALUE_STATISTICS]
    return row, column, weight, [*keys, LABELLED_KEY]


def confusion_cells(rows: ChunkRows) -> Cells:
    """Multiclass: each judged row adds 1 under its (outcome, prediction)."""
    judged = np.array([], dtype=np.int64)
    if rows.outcome is not None:
        judged = np.flatnonzero(np.array([o is not None for o in rows.outcome], dtype=bool))
    if not judged.size:
        return judged, judged, np.array([]), []
    pairs = pd.MultiIndex.from_arrays([rows.outcome[judged], rows.prediction[judged]])
    codes, uniques = pd.factorize(pairs)
    keys = [(str(outcome), str(predicted)) for outcome, predicted in uniques]
    return judged, np.asarray(codes, dtype=np.int64), np.ones(judged.size), keys


def added_up(sums: SliceSums, keys: tuple[np.ndarray, ...]) -> tuple[np.ndarray, SliceSums]:
    """The entries added up per distinct key (arrays of an entry each): each key's first
    entry, and the totals (keyed as that entry), from sparse products, no Python loop."""
    codes = [pd.factorize(column)[0] for column in keys]
    key = np.ravel_multi_index(codes, [int(c.max()) + 1 for c in codes])
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    adding = adder(inverse.ravel(), first.size)
    firsts = (column[first] for column in columns_of(sums)[:5])
    parts = (adding @ sums.scores).tocsr(), sums.values.added(adding), sums.confusion.added(adding)
    return first, SliceSums(*firsts, adding @ sums.sums, *parts)


def adder(inverse: np.ndarray, size: int) -> sparse.csr_matrix:
    """The sparse (size, len(inverse)) matrix that adds up rows i with the same inverse[i]."""
    ones = np.ones(inverse.size)
    return sparse.csr_matrix((ones, (inverse, np.arange(inverse.size))), shape=(size, inverse.size))


def summed(sums: SliceSums, seconds: int) -> SliceSums:
    """The entries added up per (version, segment, period, feature, slice), each start
    floored to its period of ``seconds`` (86400: days)."""
    if not len(sums):
        return sums
    start = sums.start - sums.start % seconds
    first, totals = added_up(sums, (sums.version, sums.segment, start, sums.feature, sums.slice))
    totals.start = start[first]
    return totals


# --- a day's slices, stored as one compact row ---

_HEADER = struct.Struct("<II")  # header length, entries
TEXTS = ("segments", "features", "slices")  # the JSON keys of the text columns, in order


def slices_encode(sums: SliceSums) -> bytes:
    """Entries as bytes: the distinct texts once (JSON), then codes and the sums, of the
    fields that are not all zero (a classifier's regression sums are left out), then the
    score bins that are not zero as (entry, column, count) triples, then the values' and the
    confusion counts' cells that are not zero as (entry, key, sum) triples (keys in the
    JSON)."""
    return slices_encode_many(sums, np.array([0, len(sums)]))[0]


def slices_encode_many(sums: SliceSums, bounds: np.ndarray) -> list[bytes]:
    """Many `slices_encode`s at once, byte for byte the same: document i of the entries
    bounds[i]:bounds[i + 1] (ascending, from 0 to ``len(sums)``). Their parts are found for
    all entries at once (`DocumentParts`), so the loop per document only slices them, writes
    its JSON header and compresses: a chunk's thousand hours cost a few passes over its
    arrays, not a thousand small `pd.factorize` calls and sparse slicings."""
    parts = DocumentParts.of(sums, np.asarray(bounds, dtype=np.int64))
    return [parts.encode(i) for i in range(len(bounds) - 1)]


@dataclass
class Pieces:
    """Arrays (or lists) cut into documents: document i's piece of each is at
    offsets[i]:offsets[i + 1]."""

    offsets: list[int]
    arrays: list

    def __getitem__(self, i: int) -> list:
        start, end = self.offsets[i], self.offsets[i + 1]
        return [array[start:end] for array in self.arrays]

    def size(self, i: int) -> int:
        return self.offsets[i + 1] - self.offsets[i]


def document_of(bounds: np.ndarray) -> np.ndarray:
    """Each item's document, document i holding items bounds[i]:bounds[i + 1]."""
    return np.repeat(np.arange(bounds.size - 1), np.diff(bounds))


def text_pieces(column: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, Pieces]:
    """Each entry's code among its document's distinct texts, and each document's texts,
    as `pd.factorize` of the document's entries alone numbers and lists them (in order of
    first appearance; a missing text is -1)."""
    codes, uniques = pd.factorize(column)
    document, present = document_of(bounds), codes >= 0
    width = max(len(uniques), 1)
    # A document's entries are contiguous, so its (document, text) pairs are numbered
    # one after another, each document's from its first text on.
    numbered, pairs = pd.factorize(document[present] * width + codes[present])
    offsets = np.searchsorted(pairs // width, np.arange(bounds.size))
    local = np.full(codes.size, -1, dtype="<i4")
    local[present] = numbered - offsets[document[present]]
    texts = np.array([str(text) for text in uniques], dtype=object)[pairs % width]
    return local, Pieces(offsets.tolist(), [texts.tolist()])


def fields_kept(sums: np.ndarray, bounds: np.ndarray) -> list[np.ndarray]:
    """Per document, the columns of ``sums`` that are not all zero in its entries."""
    starts = bounds[:-1]
    filled = starts < bounds[1:]  # reduceat would give an empty document its next row
    kept = np.zeros((starts.size, sums.shape[1]), dtype=bool)
    kept[filled] = np.logical_or.reduceat(sums != 0, starts[filled], axis=0)
    return [np.flatnonzero(row) for row in kept]


def cell_pieces(matrix: sparse.csr_matrix, bounds: np.ndarray) -> tuple[Pieces, np.ndarray]:
    """The matrix's cells that are not zero, in its order, cut into documents of rows: each
    one's row in its document (<i4), column and value (<f8); and each one's document."""
    matrix = matrix.tocsr()
    nonzero = matrix.data != 0
    row = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))[nonzero]
    offsets = np.concatenate([[0], np.cumsum(nonzero)])[matrix.indptr[bounds]]
    document = document_of(offsets)
    local = (row - bounds[document]).astype("<i4")
    cells = [local, matrix.indices[nonzero], matrix.data[nonzero].astype("<f8")]
    return Pieces(offsets.tolist(), cells), document


def score_pieces(scores: sparse.csr_matrix, bounds: np.ndarray) -> Pieces:
    """The score bins that are not zero as (entry, column, count) triples per document."""
    cells, _ = cell_pieces(scores, bounds)
    row, column, count = cells.arrays
    return Pieces(cells.offsets, [row, column.astype("u1"), count])


def keyed_pieces(part: Keyed, bounds: np.ndarray) -> tuple[Pieces, Pieces]:
    """A keyed part's cells that are not zero as (entry, key, sum) triples per document,
    each key numbered among those its document uses, in the part's order; and those keys
    (only those in use: a day's sums keep the keys of hours subtracted from them)."""
    cells, document = cell_pieces(part.matrix, bounds)
    row, column, total = cells.arrays
    width = max(len(part.keys), 1)
    used, numbered = np.unique(document * width + column, return_inverse=True)
    offsets = np.searchsorted(used // width, np.arange(bounds.size))
    local = (numbered.ravel() - offsets[document]).astype("<i4")
    keys = [list(part.keys[i]) for i in (used % width).tolist()]
    return Pieces(cells.offsets, [row, local, total]), Pieces(offsets.tolist(), [keys])


@dataclass
class DocumentParts:
    """What `slices_encode` writes for each document of many, cut from arrays of all their
    entries (document i: entries bounds[i]:bounds[i + 1])."""

    bounds: list[int]
    version: bytes  # <i8 per entry
    start: bytes  # <i8 per entry
    codes: Pieces  # each text column's <i4 codes
    texts: list[Pieces]  # each text column's distinct texts
    sums: np.ndarray
    kept: list[np.ndarray]  # the columns of sums stored
    scores: Pieces
    keyed: list[tuple[Pieces, Pieces]]  # the values' and the confusion counts' cells, keys

    @classmethod
    def of(cls, sums: SliceSums, bounds: np.ndarray) -> DocumentParts:
        coded = [text_pieces(column, bounds) for column in (sums.segment, sums.feature, sums.slice)]
        return cls(
            bounds.tolist(),
            sums.version.astype("<i8").tobytes(),
            sums.start.astype("<i8").tobytes(),
            Pieces(bounds.tolist(), [codes for codes, _ in coded]),
            [texts for _, texts in coded],
            sums.sums,
            fields_kept(sums.sums, bounds),
            score_pieces(sums.scores, bounds),
            [keyed_pieces(part, bounds) for part in (sums.values, sums.confusion)],
        )

    def header(self, i: int) -> bytes:
        """Document i's JSON: its fields, cell counts and keys, and texts."""
        fields_ = [SLICE_SUM_FIELDS[column] for column in self.kept[i].tolist()]
        header = {"fields": fields_, "scores": self.scores.size(i)}
        for name, (cells, keys) in zip(("values", "confusion"), self.keyed, strict=True):
            header[name], header[f"{name}_n"] = keys[i][0], cells.size(i)
        header |= {name: texts[i][0] for name, texts in zip(TEXTS, self.texts, strict=True)}
        return json.dumps(header, separators=(",", ":")).encode()

    def encode(self, i: int) -> bytes:
        start, end = self.bounds[i], self.bounds[i + 1]
        encoded = self.header(i)
        sums = self.sums[start:end][:, self.kept[i]]
        parts = [
            _HEADER.pack(len(encoded), end - start),
            encoded,
            self.version[8 * start : 8 * end],
            self.start[8 * start : 8 * end],
            *(codes.tobytes() for codes in self.codes[i]),
            np.ascontiguousarray(sums, dtype="<f8").tobytes(),
            *(cells.tobytes() for cells in self.scores[i]),
            *(cells.tobytes() for keyed, _ in self.keyed for cells in keyed[i]),
        ]
        return pack(b"".join(parts))


def slices_decode(data: bytes) -> SliceSums:
    """The entries of `slices_encode`; fields it did not store read as 0 (score bins, values
    and confusion counts of a document written before them too: `scores_complete`,
    `values_complete` and `confusion_complete` tell)."""
    raw = unpack(data)
    size, n = _HEADER.unpack_from(raw)
    offset = _HEADER.size + size
    header = json.loads(raw[_HEADER.size : offset])
    version = np.frombuffer(raw, "<i8", n, offset)
    start = np.frombuffer(raw, "<i8", n, offset + 8 * n)
    codes = [np.frombuffer(raw, "<i4", n, offset + 16 * n + 4 * n * i) for i in range(3)]
    offset += 28 * n
    stored = np.frombuffer(raw, "<f8", n * len(header["fields"]), offset)
    sums = np.zeros((n, len(SLICE_SUM_FIELDS)))
    columns = [SLICE_SUM_FIELDS.index(name) for name in header["fields"]]
    sums[:, columns] = stored.reshape(n, len(columns))
    texts = [np.asarray(header[key], dtype=object) for key in ("segments", "features", "slices")]
    segment, feature, slice_ = (text[code] for text, code in zip(texts, codes, strict=True))
    offset += stored.nbytes
    nnz = header.get("scores", 0)
    row = np.frombuffer(raw, "<i4", nnz, offset)
    column = np.frombuffer(raw, "u1", nnz, offset + 4 * nnz)
    counts = np.frombuffer(raw, "<f8", nnz, offset + 5 * nnz)
    scores = sparse.csr_matrix((counts, (row, column)), shape=(n, len(SCORE_FIELDS)))
    offset += 13 * nnz
    keyed = []
    for name in ("values", "confusion"):
        keys = [tuple(key) for key in header.get(name, [])]
        cells = header.get(f"{name}_n", 0)
        row = np.frombuffer(raw, "<i4", cells, offset)
        column = np.frombuffer(raw, "<i4", cells, offset + 4 * cells)
        data = np.frombuffer(raw, "<f8", cells, offset + 8 * cells)
        keyed.append(Keyed.of(row, n, column, data, keys))
        offset += 16 * cells
    return SliceSums(
        version.astype(np.int64),
        segment,
        start.astype(np.int64),
        feature,
        slice_,
        sums,
        scores,
        *keyed,
    )


# --- the chunk's days, written ---


def day_starts(sums: SliceSums) -> np.ndarray:
    return sums.start - sums.start % 86400


def days_summed(
    model: MLModel, hours: list[datetime], days: list[datetime], new: SliceSums
) -> list[tuple[datetime, bytes]]:
    """The documents of the days the chunk's hours fall in, with the chunk's entries ``new``
    (`chunk_slices`). ``days`` are those whose every hour is in the chunk: their sums are the
    chunk's. Another day's sums are updated: its stored sums, minus what the chunk's hours held
    before, plus what they hold now; so the cost is in the chunk's rows, not the day's."""
    touched = sorted({day_floor(hour) for hour in hours})
    partial = sorted(set(touched) - set(days))
    parts = [new]
    if partial:
        redone = [hour for hour in hours if day_floor(hour) in partial]
        before = SliceHour.objects.filter(model=model, hour__in=redone)
        old = [slices_decode(data) for data in before.values_list("entries", flat=True)]
        parts += [negated(entries) for entries in old]
        stored = SliceDay.objects.filter(model=model, day__in=partial)
        parts += [slices_decode(data) for data in stored.values_list("sums", flat=True)]
    sums = summed(SliceSums.concat(parts), 86400)
    sums = sums.take(np.flatnonzero(sums.sums[:, PREDICTIONS] > 0.5))  # slices left empty go
    return by_period(sums, 86400)


def documents_write(
    model: MLModel,
    hours: list[datetime],
    hour_documents: list[tuple[datetime, bytes]],
    day_documents: list[tuple[datetime, bytes]],
) -> None:
    """Replace the hours' documents and their days'."""
    SliceHour.objects.filter(model=model, hour__in=hours).delete()
    SliceDay.objects.filter(model=model, day__in=sorted({day_floor(h) for h in hours})).delete()
    documents_insert(SliceHour, "hour", model, hour_documents)
    documents_insert(SliceDay, "day", model, day_documents)


PREDICTIONS = SLICE_SUM_FIELDS.index("predictions")


def negated(sums: SliceSums) -> SliceSums:
    return SliceSums(*columns_of(sums)[:5], -sums.sums, -sums.scores, -sums.values, -sums.confusion)


def by_period(sums: SliceSums, seconds: int) -> list[tuple[datetime, bytes]]:
    """The entries split by their period (hour or day), each encoded."""
    period = sums.start - sums.start % seconds
    order = np.argsort(period, kind="stable")
    starts, first = np.unique(period[order], return_index=True)
    documents = slices_encode_many(sums.take(order), np.append(first, len(order)))
    periods = (datetime.fromtimestamp(start, UTC) for start in starts.tolist())
    return list(zip(periods, documents, strict=True))


def documents_insert(table, column: str, model: MLModel, rows: list[tuple[datetime, bytes]]):
    """Insert (start, document) rows: on PostgreSQL by a binary COPY, so their megabytes of
    documents are not sent as hex text."""
    field = "entries" if table is SliceHour else "sums"
    if not is_postgres():
        table.objects.bulk_create(
            [table(model=model, **{column: start, field: data}) for start, data in rows], 100
        )
        return
    name = table._meta.db_table
    sql = f"COPY {name} (model_id, {column}, {field}) FROM STDIN (FORMAT BINARY)"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        copy.set_types(["bigint", "timestamptz", "bytea"])
        for start, data in rows:
            copy.write_row((model.pk, start, data))


# --- reading ---


def window_slices(model: MLModel, start: datetime | None, end: datetime | None) -> SliceSums:
    """The sums of every day in [start, end) (either open), per version, segment, day, feature
    and slice."""
    stored = SliceDay.objects.filter(model=model)
    if start is not None:
        stored = stored.filter(day__gte=start)
    if end is not None:
        stored = stored.filter(day__lt=end)
    return SliceSums.concat([slices_decode(data) for data in stored.values_list("sums", flat=True)])
