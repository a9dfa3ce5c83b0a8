"""Data quality of a current window against its reference, from histograms and counts."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from monitoring.stats.histograms import HistogramRows, NumericHistogram, histogram_rows


def out_of_range(reference: NumericHistogram, current: NumericHistogram) -> tuple[int, int]:
    """(below, above): current values outside the reference's range, at the bins' resolution.

    Exact when the bins' outer edges are the reference's minimum and maximum (bins frozen from
    the reference): a bin holding only values equal to its upper edge marks the minimum there.
    """
    below, above = out_of_range_rows(reference, histogram_rows([current], current.edges))
    return int(below[0]), int(above[0])


def out_of_range_rows(
    reference: NumericHistogram, current: HistogramRows
) -> tuple[np.ndarray, np.ndarray]:
    """`out_of_range` of each row: (below, above) arrays."""
    ref_counts, cur_counts = np.asarray(reference.counts), current.counts
    present = np.flatnonzero(ref_counts)
    rows = cur_counts.shape[0]
    if present.size == 0:
        return np.zeros(rows, np.int64), np.zeros(rows, np.int64)
    low, high = int(present[0]), int(present[-1])
    below = cur_counts[:, :low].sum(axis=1)
    at_edge = low < reference.at_edges.size and ref_counts[low] == reference.at_edges[low]
    if at_edge:  # the reference's minimum is the edge itself: values under it are outside
        below += cur_counts[:, low] - current.at_edges[:, low]
    return below, cur_counts[:, high + 1 :].sum(axis=1)


def unseen_categories(reference: Mapping[str, int], current: Mapping[str, int]) -> dict[str, int]:
    """Current categories the reference never had, most frequent first."""
    unseen = {key: count for key, count in current.items() if count and not reference.get(key)}
    return dict(sorted(unseen.items(), key=lambda item: (-item[1], item[0])))


def coarse_shares(histogram: NumericHistogram, edges: np.ndarray) -> np.ndarray:
    """Shares of a fine histogram's values in coarser bins: fine bin i, ``(e[i-1], e[i]]``, goes
    to the coarse bin holding its upper edge; the open top bin to the last coarse bin."""
    counts = np.asarray(histogram.counts, dtype=float)
    total = counts.sum()
    upper = np.append(histogram.edges, np.inf)
    index = np.clip(np.searchsorted(edges, upper, side="left") - 1, 0, edges.size - 2)
    coarse = np.bincount(index, weights=counts, minlength=edges.size - 1)
    return coarse / total if total else coarse
