"""Model performance from stored counts and sums, each metric with a confidence interval.

Proportions (accuracy, precision, recall) get Wilson intervals, means (log loss, Brier, MAE,
bias) normal intervals from their sums of squares. Undefined metrics (no positives, empty
window) are None, where scikit-learn would warn and return 0.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from monitoring.stats.moments import (
    CONFIDENCE,
    Estimate,
    Moments,
    mean_estimate,
    moments,
    z_value,
)

EPS = float(np.finfo(np.float64).eps)


def wilson_interval(k: int, n: int, *, confidence: float = CONFIDENCE) -> Estimate | None:
    """Proportion k/n with its Wilson score interval (no continuity correction)."""
    if n == 0:
        return None
    z = z_value(confidence)
    p = k / n
    denominator = 1 + z**2 / n
    center = (p + z**2 / (2 * n)) / denominator
    half = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    # The interval always contains p; clamping only removes rounding at k = 0 or k = n.
    low, high = min(max(center - half, 0.0), p), max(min(center + half, 1.0), p)
    return Estimate(p, float(low), float(high), n)


def poisson_interval(count: int, *, confidence: float = CONFIDENCE) -> Estimate:
    """A count with the exact (Garwood) interval of its Poisson mean: the means under which
    a count at least this large, or at most this large, has chance (1 - confidence) / 2,
    from the chi-square quantiles (0 below a count of 0)."""
    low, high = poisson_bounds(np.array([count]), confidence=confidence)
    return Estimate(float(count), float(low[0]), float(high[0]), int(count))


def poisson_bounds(counts: np.ndarray, *, confidence: float = CONFIDENCE):
    """`poisson_interval`'s bounds of many counts at once (one SciPy call, not one a count:
    an hourly chart has hundreds)."""
    tail = (1 - confidence) / 2
    low = np.where(counts > 0, stats.chi2.ppf(tail, 2 * np.maximum(counts, 1)) / 2, 0.0)
    high = stats.chi2.ppf(1 - tail, 2 * counts + 2) / 2
    return low, high


# --- binary classification ---


@dataclass(frozen=True)
class BinaryCounts:
    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0

    def __add__(self, other: BinaryCounts) -> BinaryCounts:
        return BinaryCounts(
            self.tp + other.tp, self.fp + other.fp, self.tn + other.tn, self.fn + other.fn
        )

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn


@dataclass(frozen=True)
class BinaryMetrics:
    accuracy: Estimate | None
    precision: Estimate | None
    recall: Estimate | None
    f1: Estimate | None
    n: int


def binary_counts(y_true: ArrayLike, y_pred: ArrayLike, *, positive: Hashable = 1) -> BinaryCounts:
    """Confusion counts of labelled predictions."""
    actual = np.asarray(y_true) == positive
    predicted = np.asarray(y_pred) == positive
    return BinaryCounts(
        tp=int(np.sum(actual & predicted)),
        fp=int(np.sum(~actual & predicted)),
        tn=int(np.sum(~actual & ~predicted)),
        fn=int(np.sum(actual & ~predicted)),
    )


def binary_metrics(counts: BinaryCounts, *, confidence: float = CONFIDENCE) -> BinaryMetrics:
    c = counts
    return BinaryMetrics(
        accuracy=wilson_interval(c.tp + c.tn, c.n, confidence=confidence),
        precision=wilson_interval(c.tp, c.tp + c.fp, confidence=confidence),
        recall=wilson_interval(c.tp, c.tp + c.fn, confidence=confidence),
        f1=f1_estimate(c, confidence=confidence),
        n=c.n,
    )


def f1_estimate(counts: BinaryCounts, *, confidence: float = CONFIDENCE) -> Estimate | None:
    """F1 with an interval mapped from the Wilson interval of the Jaccard index.

    F1 = 2J / (1 + J) with J = tp / (tp + fp + fn), increasing in J. Given the m = tp + fp + fn
    rows that are positive in truth or prediction, tp is binomial(m, J), so the Wilson interval
    of J mapped through 2J / (1 + J) is an interval for F1 with the same coverage.
    """
    m = counts.tp + counts.fp + counts.fn
    jaccard = wilson_interval(counts.tp, m, confidence=confidence)
    if jaccard is None:
        return None

    def to_f1(j: float) -> float:
        return 2 * j / (1 + j)

    return Estimate(to_f1(jaccard.value), to_f1(jaccard.low), to_f1(jaccard.high), m)


def log_loss_terms(y_true: ArrayLike, scores: ArrayLike, *, positive: Hashable = 1) -> np.ndarray:
    """Per-row negative log-likelihood, clipped at machine epsilon as scikit-learn does."""
    actual = np.asarray(y_true) == positive
    p = np.asarray(scores, dtype=float)
    likelihood = np.where(actual, np.clip(p, EPS, 1 - EPS), np.clip(1 - p, EPS, 1 - EPS))
    return -np.log(likelihood)


def brier_terms(y_true: ArrayLike, scores: ArrayLike, *, positive: Hashable = 1) -> np.ndarray:
    """Per-row squared error of the score against the 0/1 outcome."""
    actual = (np.asarray(y_true) == positive).astype(float)
    return (np.asarray(scores, dtype=float) - actual) ** 2


def log_loss_estimate(terms: Moments, *, confidence: float = CONFIDENCE) -> Estimate | None:
    """Log loss from the moments of ``log_loss_terms`` (sum and sum of squares)."""
    return mean_estimate(terms, confidence=confidence)


def brier_estimate(terms: Moments, *, confidence: float = CONFIDENCE) -> Estimate | None:
    """Brier score from the moments of ``brier_terms``."""
    return mean_estimate(terms, confidence=confidence)


# --- multiclass ---


@dataclass(frozen=True)
class MulticlassMetrics:
    accuracy: Estimate | None
    macro_f1: float | None
    labels: list[Hashable]
    f1_per_class: list[float]
    n: int


ConfusionInput = ArrayLike | Mapping[tuple[Hashable, Hashable], int]


def confusion_matrix_from_counts(
    counts: Mapping[tuple[Hashable, Hashable], int],
) -> tuple[np.ndarray, list[Hashable]]:
    """Matrix (rows = actual, columns = predicted) from {(actual, predicted): count}."""
    labels = sorted({label for pair in counts for label in pair}, key=repr)
    position = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for (actual, predicted), count in counts.items():
        matrix[position[actual], position[predicted]] += count
    return matrix, labels


def multiclass_metrics(
    matrix: ConfusionInput,
    labels: Sequence[Hashable] | None = None,
    *,
    confidence: float = CONFIDENCE,
) -> MulticlassMetrics:
    """Accuracy (Wilson) and macro F1 from a confusion matrix (rows = actual).

    Classes that occur neither as actual nor as predicted are left out of the macro average,
    as scikit-learn does when it is not given labels.
    """
    if isinstance(matrix, Mapping):
        matrix, labels = confusion_matrix_from_counts(matrix)
    matrix = np.asarray(matrix, dtype=np.int64)
    labels = list(range(matrix.shape[0])) if labels is None else list(labels)
    n = int(matrix.sum())
    tp = np.diag(matrix)
    actual, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    present = (actual + predicted) > 0
    f1 = 2 * tp[present] / (actual[present] + predicted[present])
    return MulticlassMetrics(
        accuracy=wilson_interval(int(tp.sum()), n, confidence=confidence),
        macro_f1=float(f1.mean()) if f1.size else None,
        labels=[label for label, keep in zip(labels, present, strict=True) if keep],
        f1_per_class=[float(v) for v in f1],
        n=n,
    )


# --- regression ---


@dataclass(frozen=True)
class RegressionSums:
    """Mergeable sums for regression metrics; error = prediction - actual.

    ``squared_error`` holds (n, sum e^2, sum e^4) so that RMSE gets an interval; ``ape`` holds
    the absolute percentage errors of rows whose actual value is not 0.
    """

    error: Moments
    abs_error: Moments
    squared_error: Moments
    ape: Moments

    def __add__(self, other: RegressionSums) -> RegressionSums:
        return RegressionSums(
            self.error + other.error,
            self.abs_error + other.abs_error,
            self.squared_error + other.squared_error,
            self.ape + other.ape,
        )

    @property
    def n(self) -> int:
        return self.error.n


@dataclass(frozen=True)
class RegressionMetrics:
    mae: Estimate | None
    rmse: Estimate | None
    mape: Estimate | None
    bias: Estimate | None
    n: int
    mape_skipped: int


def regression_sums(y_true: ArrayLike, y_pred: ArrayLike) -> RegressionSums:
    actual = np.asarray(y_true, dtype=float)
    error = np.asarray(y_pred, dtype=float) - actual
    nonzero = actual != 0
    return RegressionSums(
        error=moments(error),
        abs_error=moments(np.abs(error)),
        squared_error=moments(error**2),
        ape=moments(np.abs(error[nonzero]) / np.abs(actual[nonzero])),
    )


def regression_metrics(
    sums: RegressionSums, *, confidence: float = CONFIDENCE
) -> RegressionMetrics:
    return RegressionMetrics(
        mae=mean_estimate(sums.abs_error, confidence=confidence),
        rmse=_root(mean_estimate(sums.squared_error, confidence=confidence)),
        mape=mean_estimate(sums.ape, confidence=confidence),
        bias=mean_estimate(sums.error, confidence=confidence),
        n=sums.n,
        mape_skipped=sums.n - sums.ape.n,
    )


def _root(mse: Estimate | None) -> Estimate | None:
    """RMSE and its interval: the square root of the MSE's (monotone transform)."""
    if mse is None:
        return None
    return Estimate(
        float(np.sqrt(mse.value)),
        float(np.sqrt(max(mse.low, 0.0))),
        float(np.sqrt(mse.high)),
        mse.n,
    )
