"""Every sketch of a chunk in one pass over its rows: vectorised, whatever the number of groups.

A group is a (version, segment, hour). Each sketch kind is computed for all groups at once:
a row's group and bin make one key, NumPy counts and sums per key (`np.unique` and
`np.bincount`), and the non-empty bins of every group are encoded in bulk
(`sparse_encode_groups`). Python loops run per group only to slice and compress bytes, so the
cost is in the rows, not in the number of groups or features.

What a group gets (each with its n and missing count):
- binary: a score histogram of its judged, scored predictions, and one of all its scored
  predictions by predicted class, judged or not (what estimates before outcomes read);
  multiclass: a confusion table, and per class of the rows' scores (`name`: the class) that
  class against the rest in the two binary layouts (`class_score`, `class_all`);
- every task: a histogram of its label delays;
- per feature of the model: numerical, the JSON numbers on the model's fixed bins (any
  other value is missing); categorical, each present value counted by its `category_key`;
  unknown (every value so far missing), the missing count alone;
- regression, where the version has an error model: the sums its estimated MAE and RMSE are
  read from (`monitoring.stats.direct_loss.SUM_FIELDS`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from factory.models import MLModel, Task
from monitoring.models import SketchKind
from monitoring.pipeline.bins import UNKNOWN, Bins
from monitoring.pipeline.chunk_rows import Categories, ChunkRows
from monitoring.pipeline.codec import categorical_encode, confusion_encode
from monitoring.pipeline.error_models import inputs_of
from monitoring.stats.auc import SCORE_BINS, score_bin_index
from monitoring.stats.codec import sparse_encode, sparse_encode_groups
from monitoring.stats.delay import DELAY_BINS, DELAY_EDGES_S
from monitoring.stats.direct_loss import ErrorModel, inputs_take, loss_sums
from monitoring.stats.histograms import bin_index

# A row of monitoring_sketch, in `SKETCH_COLUMNS` order: model id, version id, segment,
# period, start, kind, name, n, missing, data.
SketchRow = tuple[int, int, str, str, datetime, str, str, int, int, bytes]


@dataclass
class Groups:
    """Each row's group (an index into ``keys``) and each group's row count; for sketches,
    each group's first five columns of a sketch row (``heads``, `headed`)."""

    of_row: np.ndarray
    keys: list[tuple[int, str, datetime]]  # (version id, segment, hour)
    sizes: np.ndarray
    heads: list[tuple] = field(default_factory=list)

    @classmethod
    def of(cls, rows: ChunkRows) -> Groups:
        frame = pd.DataFrame({"v": rows.version, "s": rows.segment, "h": rows.hour})
        grouped = frame.groupby(["v", "s", "h"], sort=True)
        sizes = grouped.size()  # in the order of the group numbers
        keys = [(int(v), s, datetime.fromtimestamp(int(h), UTC)) for v, s, h in sizes.index]
        return cls(grouped.ngroup().to_numpy(np.int64), keys, sizes.to_numpy(np.int64))

    def headed(self, model_id: int, period: str) -> Groups:
        """The groups with their sketch rows' heads: (model id, version id, segment, period,
        start), built once a group, not once a sketch."""
        heads = [
            (model_id, version, segment, period, start) for version, segment, start in self.keys
        ]
        return Groups(self.of_row, self.keys, self.sizes, heads)


@dataclass
class Binned:
    """Values counted per (group, bin): the non-empty bins, sorted by group then bin."""

    group: np.ndarray  # each entry's group
    index: np.ndarray  # each entry's bin
    inverse: np.ndarray  # each value's entry

    @classmethod
    def of(cls, group: np.ndarray, index: np.ndarray, size: int) -> Binned:
        keys, inverse = np.unique(group * size + index, return_inverse=True)
        return cls(keys // size, keys % size, inverse.ravel())

    def counts(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Per entry: how many values (or how many True weights), or the sum of float weights."""
        counts = np.bincount(self.inverse, weights=weights, minlength=self.group.size)
        floats = weights is not None and weights.dtype.kind == "f"
        return counts if floats else counts.astype(np.int64)

    def entries(self) -> Iterator[tuple[int, int, int]]:
        """(group, bin, count) of each entry, as Python numbers."""
        counts = self.counts().tolist()
        return zip(self.group.tolist(), self.index.tolist(), counts, strict=True)

    def encode(
        self,
        groups: np.ndarray,
        size: int,
        arrays: list[np.ndarray],
        scalars: list[np.ndarray] = (),
    ) -> list[bytes]:
        """One encoding per group of ``groups`` (sorted), empty where it has no entry."""
        bounds = np.searchsorted(self.group, np.append(groups, np.iinfo(np.int64).max))
        sizes = np.full(groups.size, size)
        return sparse_encode_groups(sizes, bounds, self.index, arrays, scalars)


def chunk_sketches(
    *,
    model: MLModel,
    bins: dict[int, dict[str, Bins]],
    rows: ChunkRows,
    period: str,
    error_models: dict[int, ErrorModel] | None = None,
) -> list[SketchRow]:
    """Every sketch row of the rows, of the ``period`` their hour column starts (an hour, or a
    day: `ChunkRows.days_only`); ``error_models`` are the regression versions'
    (monitoring.pipeline.error_models)."""
    if not len(rows):
        return []
    groups = Groups.of(rows).headed(model.pk, period)
    out = []
    if model.task == Task.BINARY:
        out += score_sketches(groups, rows)
        out += all_score_sketches(groups, rows)
    if model.task == Task.MULTICLASS:
        out += confusion_sketches(groups, rows)
        out += class_sketches(groups, rows)
    if model.task == Task.REGRESSION:
        out += loss_sketches(groups, rows, error_models or {})
    out += delay_sketches(groups, rows)
    # Every version is binned on the model's bins (`hours_bins`): one pass for all groups.
    features = {name: one for by_version in bins.values() for name, one in by_version.items()}
    for feature in features.values():
        out += feature_sketches(groups, feature, rows)
    return out


def rows_of(groups: Groups, members: np.ndarray, kind: str, name: str, n, missing, datas):
    return [
        (*groups.heads[g], kind, name, int(n[i]), int(missing[i]), datas[i])
        for i, g in enumerate(members.tolist())
    ]


def score_sketches(groups: Groups, rows: ChunkRows) -> list[SketchRow]:
    """Groups with judged, scored predictions: their scores' histogram by outcome."""
    judged = ~np.isnan(rows.actual) & ~np.isnan(rows.score)
    members, n, datas = judged_histograms(
        groups.of_row[judged], len(groups.keys), rows.score[judged], rows.actual[judged] == 1.0
    )
    return rows_of(groups, members, SketchKind.SCORE, "", n, np.zeros_like(n), datas)


def judged_histograms(of_row: np.ndarray, size: int, scores: np.ndarray, positive: np.ndarray):
    """(groups, n, encodings) of the histograms of judged scores by outcome (the layout of
    `ScoreHistogram`), ``of_row`` giving each score's group among ``size``."""
    binned = Binned.of(of_row, score_bin_index(scores, SCORE_BINS), SCORE_BINS)
    members = np.unique(binned.group)
    arrays = [binned.counts(positive), binned.counts(~positive), binned.counts(scores)]
    n = np.bincount(of_row, minlength=size)[members]
    return members, n, binned.encode(members, SCORE_BINS, arrays)


def all_score_sketches(groups: Groups, rows: ChunkRows) -> list[SketchRow]:
    """Groups with scored predictions, labelled or not: their scores' histogram split by the
    class predicted, all rows and judged rows apart (the layout of `AllScoreHistogram`), so
    that a window's performance can be estimated before its outcomes, and the estimate
    compared with the truth on the judged rows alone."""
    scored = ~np.isnan(rows.score)
    members, n, datas = all_score_histograms(
        groups.of_row[scored],
        len(groups.keys),
        rows.score[scored],
        rows.predicted[scored] == 1.0,
        ~np.isnan(rows.actual[scored]),
    )
    return rows_of(groups, members, SketchKind.ALL_SCORES, "", n, np.zeros_like(n), datas)


def all_score_histograms(
    of_row: np.ndarray, size: int, scores: np.ndarray, positive: np.ndarray, judged: np.ndarray
):
    """(groups, n, encodings) of the histograms of every score by predicted class, all and
    judged apart (the layout of `AllScoreHistogram`)."""
    binned = Binned.of(of_row, score_bin_index(scores, SCORE_BINS), SCORE_BINS)
    members = np.unique(binned.group)
    arrays = [
        binned.counts(positive),
        binned.counts(~positive),
        binned.counts(positive & judged),
        binned.counts(~positive & judged),
        binned.counts(scores),
    ]
    n = np.bincount(of_row, minlength=size)[members]
    return members, n, binned.encode(members, SCORE_BINS, arrays)


def class_sketches(groups: Groups, rows: ChunkRows) -> list[SketchRow]:
    """Per group and class of the scored rows, that class against the rest: the histograms
    of `score_sketches` (positive: the outcome is the class) and of `all_score_sketches`
    (positive: the class was predicted), all classes at once. A (group, class) pair is one
    group of the binary functions: its number is group * classes + the class's position."""
    if rows.class_scores is None or not rows.classes:
        return []
    scored = ~np.isnan(rows.class_scores[:, 0])
    k = len(rows.classes)
    index = pd.Index(rows.classes)
    predicted = index.get_indexer(rows.prediction[scored].astype(str))
    outcome = rows.outcome[scored]
    judged = pd.notna(outcome)
    actual = np.full(outcome.size, -1)
    actual[judged] = index.get_indexer(outcome[judged].astype(str))
    classes = np.arange(k)
    of_pair = (groups.of_row[scored][:, None] * k + classes).ravel()
    scores = rows.class_scores[scored].ravel()
    is_predicted = (predicted[:, None] == classes).ravel()
    is_actual = (actual[:, None] == classes).ravel()
    judged_pairs = np.repeat(judged, k)
    size = len(groups.keys) * k
    out = []
    members, n, datas = judged_histograms(
        of_pair[judged_pairs], size, scores[judged_pairs], is_actual[judged_pairs]
    )
    out += class_rows(groups, rows.classes, members, SketchKind.CLASS_SCORE, n, datas)
    members, n, datas = all_score_histograms(of_pair, size, scores, is_predicted, judged_pairs)
    out += class_rows(groups, rows.classes, members, SketchKind.CLASS_ALL, n, datas)
    return out


def class_rows(groups: Groups, classes: list[str], members, kind: str, n, datas):
    k = len(classes)
    return [
        (*groups.heads[pair // k], kind, classes[pair % k], int(n[i]), 0, datas[i])
        for i, pair in enumerate(members.tolist())
    ]


def loss_sketches(
    groups: Groups, rows: ChunkRows, error_models: dict[int, ErrorModel]
) -> list[SketchRow]:
    """Groups of versions with an error model: their rows' expected errors and, on judged
    rows, the realised ones, summed (one vector per group, summed again into days)."""
    inputs = inputs_of(rows)
    out = []
    for version_id, error_model in error_models.items():
        in_version = rows.version == version_id
        if not in_version.any():
            continue
        sums = loss_sums(
            error_model,
            inputs_take(inputs, in_version),
            rows.outcome_num[in_version],
            groups.of_row[in_version],
            len(groups.keys),
        )
        members = np.flatnonzero(sums[:, 0])
        n = sums[members, 0].astype(np.int64)
        datas = [sparse_encode([sums[g]]) for g in members.tolist()]
        out += rows_of(groups, members, SketchKind.LOSS, "", n, np.zeros_like(n), datas)
    return out


def delay_sketches(groups: Groups, rows: ChunkRows) -> list[SketchRow]:
    """Groups with labels: their label delays' histogram."""
    labelled = ~np.isnan(rows.delay)
    index = np.searchsorted(DELAY_EDGES_S, rows.delay[labelled], side="left")
    binned = Binned.of(groups.of_row[labelled], index, DELAY_BINS)
    members = np.unique(binned.group)
    n = np.bincount(groups.of_row[labelled], minlength=len(groups.keys))[members]
    datas = binned.encode(members, DELAY_BINS, [binned.counts()])
    return rows_of(groups, members, SketchKind.DELAY, "", n, np.zeros_like(n), datas)


def confusion_sketches(groups: Groups, rows: ChunkRows) -> list[SketchRow]:
    """Groups with judged predictions: their (outcome, prediction) counts."""
    judged = np.array([outcome is not None for outcome in rows.outcome], dtype=bool)
    if not judged.any():
        return []
    pairs = pd.MultiIndex.from_arrays([rows.outcome[judged], rows.prediction[judged]])
    codes, uniques = pd.factorize(pairs)
    binned = Binned.of(groups.of_row[judged], codes, max(len(uniques), 1))
    tables: dict[int, dict] = {}
    for g, code, count in binned.entries():
        tables.setdefault(g, {})[tuple(uniques[code])] = count
    members = np.array(sorted(tables), dtype=np.int64)
    n = [sum(tables[g].values()) for g in members.tolist()]
    datas = [confusion_encode(tables[g]) for g in members.tolist()]
    return rows_of(groups, members, SketchKind.CONFUSION, "", n, [0] * len(n), datas)


def feature_sketches(groups: Groups, feature: Bins, rows: ChunkRows) -> list[SketchRow]:
    """Every group's sketch of the feature, its rows without a value counted as missing."""
    if feature.kind == "numerical":
        return numerical_sketches(groups, feature, rows.numbers)
    if feature.kind == UNKNOWN:
        present = rows.present.get(feature.name, np.zeros(len(rows), dtype=bool))
        n = np.bincount(groups.of_row[present], minlength=len(groups.keys))
        missing = groups.sizes - n
        datas = [categorical_encode({}, int(m)) for m in missing.tolist()]
        members = np.arange(len(groups.keys))
        return rows_of(groups, members, SketchKind.CATEGORICAL, feature.name, n, missing, datas)
    return categorical_sketches(groups, feature, rows.categories)


def numerical_sketches(
    groups: Groups, feature: Bins, numbers: dict[str, np.ndarray]
) -> list[SketchRow]:
    """Each group's histogram on the model's edges: counts, values on an edge, sums per
    bin, the sum of squares and the missing count (the layout of `histogram_encode`)."""
    values = numbers.get(feature.name)
    if values is None:
        values = np.full(groups.of_row.size, np.nan)
    present = ~np.isnan(values)
    values, of_row = values[present], groups.of_row[present]
    edges, size = feature.edges, feature.edges.size + 1
    index = bin_index(values, edges)
    on_edge = index < edges.size
    on_edge[on_edge] = edges[index[on_edge]] == values[on_edge]
    binned = Binned.of(of_row, index, size)
    members = np.arange(len(groups.keys))
    n = np.bincount(of_row, minlength=len(groups.keys))
    missing = groups.sizes - n
    sum_sq = np.bincount(of_row, weights=values * values, minlength=len(groups.keys))
    arrays = [binned.counts(), binned.counts(on_edge), binned.counts(values)]
    datas = binned.encode(members, size, arrays, [sum_sq, missing.astype(float)])
    return rows_of(groups, members, SketchKind.NUMERICAL, feature.name, n, missing, datas)


def categorical_sketches(
    groups: Groups, feature: Bins, categories: dict[str, Categories]
) -> list[SketchRow]:
    column = categories.get(feature.name)
    codes = column.codes if column else np.full(groups.of_row.size, -1)
    keys = column.keys if column else []
    present = codes >= 0
    binned = Binned.of(groups.of_row[present], codes[present], max(len(keys), 1))
    members = np.arange(len(groups.keys))
    counts: dict[int, Counter] = {int(g): Counter() for g in members.tolist()}
    for g, code, count in binned.entries():
        counts[g][keys[code]] = count
    n = np.bincount(groups.of_row[present], minlength=len(groups.keys))
    missing = groups.sizes - n
    datas = [
        categorical_encode(dict(counts[g]), int(m))
        for g, m in zip(members.tolist(), missing.tolist(), strict=True)
    ]
    return rows_of(groups, members, SketchKind.CATEGORICAL, feature.name, n, missing, datas)
