"""ROC AUC (exact with DeLong's interval, or from score histograms) and calibration by bins.

The app stores, per hour, a `ScoreHistogram`: positives, negatives and score sums on a fixed
grid of equal bins on [0, 1]. Windows merge by ``+``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from monitoring.stats.moments import CONFIDENCE, Estimate, z_value
from monitoring.stats.performance import wilson_interval

SCORE_BINS = 1000


@dataclass(frozen=True)
class Auc:
    """ROC AUC with its interval; ``max_error`` bounds the binning error (0 when exact)."""

    value: float
    low: float
    high: float
    n_pos: int
    n_neg: int
    max_error: float = 0.0


def _labels(y_true: ArrayLike, positive: object) -> np.ndarray:
    return np.asarray(y_true) == positive


def auc_delong(
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    positive: object = 1,
    confidence: float = CONFIDENCE,
) -> Auc | None:
    """Exact AUC (ties count half) with DeLong's variance; None unless both classes occur.

    Uses the midrank form of DeLong's structural components (Sun and Xu, 2014). The interval is
    normal, clipped to [0, 1]; its bounds are NaN with fewer than two of either class.
    """
    actual = _labels(y_true, positive)
    scores = np.asarray(scores, dtype=float)
    pos, neg = scores[actual], scores[~actual]
    n_pos, n_neg = pos.size, neg.size
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = stats.rankdata(np.concatenate([pos, neg]))
    pos_ranks, neg_ranks = ranks[:n_pos], ranks[n_pos:]
    auc = (pos_ranks.sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    # Share of negatives each positive beats, and of positives beating each negative.
    v10 = (pos_ranks - stats.rankdata(pos)) / n_neg
    v01 = 1 - (neg_ranks - stats.rankdata(neg)) / n_pos
    if n_pos < 2 or n_neg < 2:
        return Auc(float(auc), np.nan, np.nan, n_pos, n_neg)
    variance = np.var(v10, ddof=1) / n_pos + np.var(v01, ddof=1) / n_neg
    return _with_normal_interval(float(auc), variance, n_pos, n_neg, confidence)


def _with_normal_interval(
    auc: float, variance: float, n_pos: int, n_neg: int, confidence: float, max_error: float = 0.0
) -> Auc:
    half = z_value(confidence) * np.sqrt(variance)
    low, high = float(max(auc - half, 0.0)), float(min(auc + half, 1.0))
    return Auc(auc, low, high, n_pos, n_neg, max_error)


@dataclass(frozen=True)
class ScoreHistogram:
    """Positives, negatives and score sums per equal-width bin of [0, 1] (right-closed bins)."""

    positives: np.ndarray
    negatives: np.ndarray
    score_sums: np.ndarray

    def __add__(self, other: ScoreHistogram) -> ScoreHistogram:
        return ScoreHistogram(
            self.positives + other.positives,
            self.negatives + other.negatives,
            self.score_sums + other.score_sums,
        )

    @property
    def n_bins(self) -> int:
        return self.positives.size


def score_bin_index(scores: ArrayLike, n_bins: int = SCORE_BINS) -> np.ndarray:
    """Bin of each score; scores outside [0, 1] go to the end bins."""
    inner = np.linspace(0, 1, n_bins + 1)[1:-1]
    return np.searchsorted(inner, np.asarray(scores, dtype=float), side="left")


def score_histogram(
    y_true: ArrayLike, scores: ArrayLike, *, positive: object = 1, n_bins: int = SCORE_BINS
) -> ScoreHistogram:
    actual = _labels(y_true, positive)
    scores = np.asarray(scores, dtype=float)
    index = score_bin_index(scores, n_bins)
    return ScoreHistogram(
        positives=np.bincount(index[actual], minlength=n_bins).astype(np.int64),
        negatives=np.bincount(index[~actual], minlength=n_bins).astype(np.int64),
        score_sums=np.bincount(index, weights=scores, minlength=n_bins),
    )


def auc_from_histogram(histogram: ScoreHistogram, *, confidence: float = CONFIDENCE) -> Auc | None:
    """AUC from binned scores, pairs within one bin counted half, Hanley-McNeil interval.

    ``max_error`` is the exact bound on the binning error: half the share of positive-negative
    pairs that share a bin. Hanley and McNeil (1982) need only the AUC and the class sizes.
    """
    pos, neg = histogram.positives.astype(float), histogram.negatives.astype(float)
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    pairs = float(n_pos) * n_neg
    negatives_below = np.cumsum(neg) - neg
    auc = float(np.sum(pos * (negatives_below + neg / 2)) / pairs)
    max_error = float(np.sum(pos * neg) / 2 / pairs)
    return _with_normal_interval(
        auc, hanley_mcneil_variance(auc, n_pos, n_neg), n_pos, n_neg, confidence, max_error
    )


def delong_variance_of_histogram(histogram: ScoreHistogram) -> float | None:
    """DeLong's variance of the binned AUC: each positive's placement is the share of
    negatives below its bin plus half those in it, each negative's the share of positives
    above plus half; the variance is theirs over each class's size (scores in one bin are
    ties, as `auc_delong` counts them). None with fewer than two of either class."""
    pos, neg = histogram.positives.astype(float), histogram.negatives.astype(float)
    n_pos, n_neg = pos.sum(), neg.sum()
    if n_pos < 2 or n_neg < 2:
        return None
    of_positive = (np.cumsum(neg) - neg / 2) / n_neg
    of_negative = (np.cumsum(pos[::-1])[::-1] - pos / 2) / n_pos
    auc = float(np.sum(pos * of_positive) / n_pos)
    spread_pos = np.sum(pos * (of_positive - auc) ** 2) / (n_pos - 1)
    spread_neg = np.sum(neg * (of_negative - auc) ** 2) / (n_neg - 1)
    return float(spread_pos / n_pos + spread_neg / n_neg)


def coarse_bin_index(scores: ArrayLike, n_bins: int) -> np.ndarray:
    """Bin of each score among ``n_bins`` (a divisor of `SCORE_BINS`): the fine bins grouped,
    so a coarse histogram of rows equals the stored fine one coarsened (`coarsened`)."""
    return score_bin_index(scores) // (SCORE_BINS // n_bins)


def coarsened(histogram: ScoreHistogram, n_bins: int) -> ScoreHistogram:
    """The histogram's bins summed in groups into ``n_bins``."""

    def grouped(values: np.ndarray) -> np.ndarray:
        return values.reshape(n_bins, -1).sum(axis=1)

    return ScoreHistogram(
        grouped(histogram.positives), grouped(histogram.negatives), grouped(histogram.score_sums)
    )


def hanley_mcneil_variance(auc: float, n_pos: int, n_neg: int) -> float:
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    numerator = auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)
    return max(numerator / (n_pos * n_neg), 0.0)


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    mean_score: float
    observed_rate: Estimate


def calibration_bins(
    histogram: ScoreHistogram, *, n_bins: int = 10, confidence: float = CONFIDENCE
) -> list[CalibrationBin]:
    """Mean score against the observed positive rate (Wilson interval) in each non-empty bin.

    The fine bins are summed in groups, so ``n_bins`` must divide the histogram's bin count.
    """
    if histogram.n_bins % n_bins:
        raise ValueError(f"{n_bins} bins do not divide {histogram.n_bins} fine bins")

    def grouped(values: np.ndarray) -> np.ndarray:
        return values.reshape(n_bins, -1).sum(axis=1)

    positives, negatives = grouped(histogram.positives), grouped(histogram.negatives)
    sums, counts = grouped(histogram.score_sums), positives + negatives
    edges = np.linspace(0, 1, n_bins + 1)
    return [
        CalibrationBin(
            low=float(edges[i]),
            high=float(edges[i + 1]),
            count=int(counts[i]),
            mean_score=float(sums[i] / counts[i]),
            observed_rate=wilson_interval(int(positives[i]), int(counts[i]), confidence=confidence),
        )
        for i in np.flatnonzero(counts)
    ]
