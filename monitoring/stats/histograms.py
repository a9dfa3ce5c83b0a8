"""Mergeable aggregates of one feature: fine histograms for numbers, counts for categories.

An hourly aggregate is a `NumericHistogram` on fixed edges derived from the reference; day and
week windows are the element-wise sum of hourly ones (`merge_histograms`). Bins are closed on the
right, ``(e[i-1], e[i]]``, and open-ended at both ends, so the cumulative count at an edge is
exactly the number of values <= that edge (what an empirical CDF, and so KS, needs). Values
equal to an edge are also counted apart (``at_edges``), which makes KS exact whenever one of the two
samples has no values strictly inside a bin: always for a reference of at most 1000 values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

DECILES = np.arange(1, 10) / 10
DEFAULT_FINE_BINS = 1000


@dataclass(frozen=True)
class NumericHistogram:
    """Counts and value sums of one numerical feature on fixed edges.

    ``counts`` and ``sums`` have ``len(edges) + 1`` entries; ``at_edges[i]`` is how many of the
    values counted in bin i are equal to ``edges[i]``; ``sum_sq`` is the total of squared values
    (for the standard deviation); ``missing`` counts NaN values, which are in no bin.
    """

    edges: np.ndarray
    counts: np.ndarray
    at_edges: np.ndarray
    sums: np.ndarray
    sum_sq: float
    missing: int = 0

    @property
    def n(self) -> int:
        """Number of non-missing values."""
        return int(self.counts.sum())

    @property
    def mean(self) -> float:
        return float(self.sums.sum() / self.n) if self.n else float("nan")

    @property
    def std(self) -> float:
        """Population standard deviation (ddof=0), as ``np.std``."""
        if not self.n:
            return float("nan")
        variance = self.sum_sq / self.n - self.mean**2
        return float(np.sqrt(max(variance, 0.0)))

    def bin_means(self) -> np.ndarray:
        """Mean value in each bin; NaN for empty bins."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), np.nan)


@dataclass(frozen=True)
class HistogramRows:
    """Many `NumericHistogram`s on the same edges, one per row (a feature's windows), so a
    statistic is computed for every window with one NumPy call instead of one call a window.

    ``counts`` and ``sums`` are (rows, len(edges) + 1), ``at_edges`` (rows, len(edges)),
    ``sum_sq`` and ``missing`` one value per row.
    """

    edges: np.ndarray
    counts: np.ndarray
    at_edges: np.ndarray
    sums: np.ndarray
    sum_sq: np.ndarray
    missing: np.ndarray

    @property
    def n(self) -> np.ndarray:
        """Non-missing values per row."""
        return self.counts.sum(axis=1)

    def row(self, i: int) -> NumericHistogram:
        return NumericHistogram(
            self.edges,
            self.counts[i],
            self.at_edges[i],
            self.sums[i],
            float(self.sum_sq[i]),
            int(self.missing[i]),
        )

    def total(self) -> NumericHistogram:
        """Every row merged into one histogram."""
        return NumericHistogram(
            self.edges,
            self.counts.sum(axis=0),
            self.at_edges.sum(axis=0),
            self.sums.sum(axis=0),
            float(sum(self.sum_sq.tolist())),  # in row order, as `merge_histograms` adds
            int(self.missing.sum()),
        )

    def bin_means(self) -> np.ndarray:
        """Mean value in each bin of each row; NaN for empty bins."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.sums / np.maximum(self.counts, 1), np.nan)


def histogram_rows(histograms: list[NumericHistogram], edges: np.ndarray) -> HistogramRows:
    """Histograms (on ``edges``) stacked as rows; no histogram gives zero rows."""
    rows, size = len(histograms), edges.size
    return HistogramRows(
        edges,
        np.array([h.counts for h in histograms], np.int64).reshape(rows, size + 1),
        np.array([h.at_edges for h in histograms], np.int64).reshape(rows, size),
        np.array([h.sums for h in histograms], float).reshape(rows, size + 1),
        np.array([h.sum_sq for h in histograms], float),
        np.array([h.missing for h in histograms], np.int64),
    )


def rows_group_sum(rows: HistogramRows, group: np.ndarray, groups: int) -> HistogramRows:
    """Rows summed by group (``group[i]`` in ``range(groups)``): hours or days into windows.
    A group without rows is a row of zeros."""

    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group, minlength=groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    present = sizes > 0

    def summed(values: np.ndarray) -> np.ndarray:
        out = np.zeros((groups, *values.shape[1:]), values.dtype)
        if present.any():
            out[present] = np.add.reduceat(values[order], starts[present], axis=0)
        return out

    return HistogramRows(
        rows.edges,
        summed(rows.counts),
        summed(rows.at_edges),
        summed(rows.sums),
        summed(rows.sum_sq),
        summed(rows.missing),
    )


def rebin_counts_rows(rows: HistogramRows, coarse_edges: ArrayLike) -> np.ndarray:
    """`rebin_counts` of every row: (rows, len(coarse_edges) + 1)."""
    coarse_edges = np.asarray(coarse_edges, dtype=float)
    position = np.searchsorted(rows.edges, coarse_edges)
    found = position < rows.edges.size
    if not np.all(found) or not np.array_equal(rows.edges[position], coarse_edges):
        raise ValueError("coarse edges must be a subset of the histogram's edges")
    cumulative = np.concatenate(
        [np.zeros((rows.counts.shape[0], 1), np.int64), np.cumsum(rows.counts, axis=1)], axis=1
    )
    bounds = np.concatenate([[0], position + 1, [rows.counts.shape[1]]])
    return np.diff(cumulative[:, bounds], axis=1)


def histogram_resample(histogram: NumericHistogram, rng: np.random.Generator) -> NumericHistogram:
    """A bootstrap replicate of the sample behind a histogram: counts drawn multinomially.

    Values keep their bin's mean, and the share of a bin's values that sit on its edge is kept
    by a binomial draw, so every statistic computed from histograms can be recomputed on it.
    """
    n = histogram.n
    if n == 0:
        return histogram
    counts = rng.multinomial(n, histogram.counts / n)
    with np.errstate(invalid="ignore", divide="ignore"):
        on_edge = np.where(histogram.counts[:-1] > 0, histogram.at_edges / histogram.counts[:-1], 0)
    at_edges = rng.binomial(counts[:-1], np.clip(on_edge, 0, 1))
    means = np.nan_to_num(histogram.bin_means())
    return NumericHistogram(
        histogram.edges, counts, at_edges, means * counts, histogram.sum_sq, histogram.missing
    )


def counts_resample(
    counts: Mapping[Hashable, int], rng: np.random.Generator
) -> dict[Hashable, int]:
    """A bootstrap replicate of category counts (multinomial on the observed shares). The
    categories are drawn in the order of their keys, so that a seeded replicate does not
    depend on the order in which the database returned the counts' rows."""
    keys = sorted(counts, key=str)
    total = sum(counts.values())
    if total == 0:
        return dict(counts)
    drawn = rng.multinomial(total, np.array([counts[k] for k in keys], dtype=float) / total)
    return {k: int(c) for k, c in zip(keys, drawn, strict=True)}


def split_missing(values: ArrayLike) -> tuple[np.ndarray, int]:
    """Return the non-NaN values as floats and how many were NaN (or None)."""
    array = np.asarray(values, dtype=float).ravel()
    present = ~np.isnan(array)
    return array[present], int(array.size - present.sum())


def decile_edges(reference_values: ArrayLike) -> np.ndarray:
    """The reference's deciles, deduplicated: the interior edges of the 10 PSI bins."""
    values, _ = split_missing(reference_values)
    if values.size == 0:
        return np.array([], dtype=float)
    return np.unique(np.quantile(values, DECILES))


def numeric_bin_edges(reference_values: ArrayLike, n_bins: int = DEFAULT_FINE_BINS) -> np.ndarray:
    """Fine interior edges: the reference's quantiles at k/n_bins (k = 0..n_bins), plus its deciles.

    The quantiles are actual reference values (``inverted_cdf``), including the minimum and the
    maximum, so a reference of at most ``n_bins`` values, or a discrete one, has every value on
    an edge and its ECDF is exact everywhere. The deciles are added so that PSI from fine counts
    re-binned to deciles is exactly the PSI of the raw values.
    """
    values, _ = split_missing(reference_values)
    if values.size == 0:
        return np.array([], dtype=float)
    levels = np.arange(n_bins + 1) / n_bins
    quantiles = np.quantile(values, levels, method="inverted_cdf")
    return np.union1d(quantiles, decile_edges(values))


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Index of the right-closed bin ``(e[i-1], e[i]]`` holding each value."""
    return np.searchsorted(edges, values, side="left")


def numeric_histogram(values: ArrayLike, edges: ArrayLike) -> NumericHistogram:
    """Aggregate raw values on the given interior edges."""
    edges = np.asarray(edges, dtype=float)
    present, missing = split_missing(values)
    index = bin_index(present, edges)
    size = edges.size + 1
    on_edge = index < edges.size
    on_edge[on_edge] = edges[index[on_edge]] == present[on_edge]
    return NumericHistogram(
        edges=edges,
        counts=np.bincount(index, minlength=size).astype(np.int64),
        at_edges=np.bincount(index[on_edge], minlength=size)[: edges.size].astype(np.int64),
        sums=np.bincount(index, weights=present, minlength=size),
        sum_sq=float(np.dot(present, present)),
        missing=missing,
    )


def merge_histograms(histograms: Iterable[NumericHistogram]) -> NumericHistogram:
    """Sum histograms that share the same edges (hours into a day, days into a week)."""
    histograms = list(histograms)
    if not histograms:
        raise ValueError("nothing to merge")
    edges = histograms[0].edges
    if any(not np.array_equal(h.edges, edges) for h in histograms):
        raise ValueError("histograms have different edges")
    return NumericHistogram(
        edges=edges,
        counts=sum((h.counts for h in histograms), np.zeros(edges.size + 1, dtype=np.int64)),
        at_edges=sum((h.at_edges for h in histograms), np.zeros(edges.size, dtype=np.int64)),
        sums=sum((h.sums for h in histograms), np.zeros(edges.size + 1)),
        sum_sq=float(sum(h.sum_sq for h in histograms)),
        missing=sum(h.missing for h in histograms),
    )


def rebin_counts(histogram: NumericHistogram, coarse_edges: ArrayLike) -> np.ndarray:
    """Counts on coarser edges, which must all be edges of the histogram (exact re-binning)."""
    return rebin_counts_rows(histogram_rows([histogram], histogram.edges), coarse_edges)[0]


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def category_counts(values: Iterable[Hashable]) -> tuple[dict[Hashable, int], int]:
    """Count categories, keeping None and NaN apart as missing."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        fast = _string_category_counts(values)
        if fast is not None:
            return fast
    counts: Counter[Hashable] = Counter()
    missing = 0
    for value in values:
        if is_missing(value):
            missing += 1
        else:
            counts[value] += 1
    return dict(counts), missing


def _string_category_counts(values: np.ndarray) -> tuple[dict[Hashable, int], int] | None:
    """Counts of an array of strings (and missing values) by NumPy; None for other contents.

    A Python loop over a million values takes seconds; sorting them as fixed-width strings
    takes a tenth of one. Only arrays whose present values are all ``str`` take this path, so
    the keys are the same as the loop's.
    """
    if values.dtype.kind == "U":
        keys, counts = np.unique(values, return_counts=True)
        return {str(k): int(c) for k, c in zip(keys, counts, strict=True)}, 0
    if values.dtype != object:
        return None
    missing = (values == None) | (values != values)  # noqa: E711 (elementwise); NaN != NaN
    present = values[~missing]
    if set(map(type, present)) - {str}:
        return None
    keys, counts = np.unique(present.astype(str), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts, strict=True)}, int(missing.sum())


def merge_category_counts(counts: Iterable[Mapping[Hashable, int]]) -> dict[Hashable, int]:
    total: Counter[Hashable] = Counter()
    for one in counts:
        total.update(one)
    return dict(total)


@dataclass(frozen=True)
class NumericReference:
    """A numerical feature's reference: its fine histogram and its decile edges (for PSI).

    Current windows are aggregated with ``numeric_histogram(values, reference.edges)``.
    """

    histogram: NumericHistogram
    deciles: np.ndarray

    @property
    def edges(self) -> np.ndarray:
        return self.histogram.edges


def numeric_reference(values: ArrayLike, n_bins: int = DEFAULT_FINE_BINS) -> NumericReference:
    """Profile raw reference values into fine bins that contain the deciles."""
    edges = numeric_bin_edges(values, n_bins)
    return NumericReference(numeric_histogram(values, edges), decile_edges(values))
