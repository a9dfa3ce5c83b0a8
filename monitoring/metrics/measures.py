"""A window's value of a metric from its sums, and the ways the registry computes one.

Each computation takes the window's hourly sums (summed over the window) and what the metric
reads beyond them (a merged sketch, business-value sums, a drift test) and returns a Measure:
the value with what intervals, comparisons and sensitivity need.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.numbers import finite
from monitoring.stats.auc import auc_from_histogram
from monitoring.stats.compare import f1_variance, macro_f1_variance, rmse_variance
from monitoring.stats.delay import delay_median_variance, delay_quantile
from monitoring.stats.direct_loss import loss_estimate, loss_gap
from monitoring.stats.estimate import judged_parts, window_estimate
from monitoring.stats.moments import Estimate, Moments, mean_estimate
from monitoring.stats.performance import (
    BinaryCounts,
    confusion_matrix_from_counts,
    f1_estimate,
    multiclass_metrics,
    wilson_interval,
)


@dataclass
class Measure:
    """A window's value, with what comparisons and sensitivity need: k of n, or moments."""

    value: float | None
    n: int
    low: float | None = None
    high: float | None = None
    successes: int | None = None
    moments: Moments | None = None
    auc: tuple[int, int] | None = None  # roc_auc: (positives, negatives)
    variance: float | None = None  # delta-method variance of the value (compare)


# (window sums, what the metric reads beyond them) -> its Measure
Compute = Callable[[dict, Any], Measure]


@dataclass(frozen=True)
class Count:
    """A count summed in the aggregates; its n is itself."""

    field: str

    def __call__(self, sums: dict, extra: Any) -> Measure:
        return Measure(sums[self.field], sums[self.field])


@dataclass(frozen=True)
class Share:
    """k of n from the sums (k = successes, n = the sum of `of`), with its Wilson interval."""

    successes: str
    of: tuple[str, ...]

    def __call__(self, sums: dict, extra: Any) -> Measure:
        return proportion(sums[self.successes], sum(sums[field] for field in self.of))


@dataclass(frozen=True)
class MeanOf:
    """The mean of a per-row value from its count, sum and sum of squares in the sums."""

    n: str
    total: str
    total_sq: str

    def moments(self, sums: dict) -> Moments:
        return Moments(sums[self.n], sums[self.total], sums[self.total_sq])

    def __call__(self, sums: dict, extra: Any) -> Measure:
        return mean(self.moments(sums))


SQUARED_ERROR = MeanOf("regressed", "error_sq_sum", "error_fourth_sum")


def extra_count(sums: dict, extra: int | None) -> Measure:
    """A count kept outside the aggregates (quarantined records)."""
    return Measure(extra or 0, extra or 0)


def f1(sums: dict, extra: Any) -> Measure:
    tn = sums["judged"] - sums["tp"] - sums["fp"] - sums["fn"]
    counts = BinaryCounts(sums["tp"], sums["fp"], tn, sums["fn"])
    measure = from_estimate(f1_estimate(counts))
    measure.variance = f1_variance(counts)
    return measure


def rmse(sums: dict, extra: Any) -> Measure:
    mse = mean_estimate(SQUARED_ERROR.moments(sums))
    if mse is None:
        return Measure(None, 0)
    return Measure(
        math.sqrt(mse.value),
        mse.n,
        finite(math.sqrt(max(mse.low, 0.0))),
        finite(math.sqrt(mse.high)),
        variance=rmse_variance(SQUARED_ERROR.moments(sums)),
    )


def roc_auc(sums: dict, histogram) -> Measure:
    result = auc_from_histogram(histogram) if histogram is not None else None
    if result is None:
        n = int(histogram.positives.sum() + histogram.negatives.sum()) if histogram else 0
        return Measure(None, n)
    n = result.n_pos + result.n_neg
    measure = Measure(result.value, n, finite(result.low), finite(result.high))
    measure.auc = (result.n_pos, result.n_neg)
    return measure


def estimated(sums: dict, extra) -> Measure:
    """A metric estimated from the window's all-scores histograms: ``extra`` is (the metric
    estimated, each calibrated version's histogram)."""
    name, parts = extra if extra is not None else ("accuracy", [])
    estimate = window_estimate(parts, name)
    return Measure(estimate.value, estimate.n, estimate.low, estimate.high)


def estimation_gap(sums: dict, extra) -> Measure:
    """Realised minus estimated over the window's judged, scored predictions. The interval is
    where the gap falls by chance while the estimate holds: a gap outside it is a change in
    the relation between scores and outcomes (concept shift). ``extra`` is (the metric, its
    realised Measure, the judged predictions' histograms per calibrated version)."""
    if extra is None:
        return Measure(None, 0)
    name, realised, parts = extra
    estimate = window_estimate(judged_parts(parts), name)
    if realised.value is None or estimate.value is None:
        return Measure(None, estimate.n)
    gap = Measure(realised.value - estimate.value, estimate.n)
    if estimate.low is not None and estimate.high is not None:
        gap.low, gap.high = estimate.low - estimate.value, estimate.high - estimate.value
    return gap


def loss_estimated(sums: dict, extra) -> Measure:
    """Regression's estimated MAE or RMSE from the window's stored loss sums: ``extra`` is
    (the metric estimated, the window's `LossSums`)."""
    if extra is None or extra[1] is None:
        return Measure(None, 0)
    estimate = loss_estimate(extra[1], extra[0])
    return Measure(estimate.value, estimate.n, estimate.low, estimate.high)


def loss_estimation_gap(sums: dict, extra) -> Measure:
    """Realised minus estimated MAE or RMSE over the window's judged rows, with the interval
    the gap falls in by chance while the error model holds."""
    if extra is None or extra[1] is None:
        return Measure(None, 0)
    gap = loss_gap(extra[1], extra[0])
    return Measure(gap.value, gap.n, gap.low, gap.high)


def macro_f1(sums: dict, confusion) -> Measure:
    result = multiclass_metrics(confusion) if confusion else None
    measure = Measure(result.macro_f1 if result else None, result.n if result else 0)
    if confusion:
        measure.variance = macro_f1_variance(confusion_matrix_from_counts(confusion)[0])
    return measure


def delay_median(sums: dict, delays) -> Measure:
    n = int(delays.sum()) if delays is not None else 0
    measure = Measure(delay_quantile(delays) if n else None, n)
    measure.variance = delay_median_variance(delays) if n else None
    return measure


def value_mean(sums: dict, values: dict | None) -> Measure:
    values = values or {"count": 0, "total": 0.0, "total_sq": 0.0}
    return mean(Moments(values["count"], values["total"], values["total_sq"]))


def value_total(sums: dict, values: dict | None) -> Measure:
    """The sum of a business value; its interval is n times the mean's."""
    measure = value_mean(sums, values)
    if measure.value is None:
        return measure
    n = measure.n
    scale = lambda v: None if v is None else v * n  # noqa: E731
    return Measure(values["total"], n, scale(measure.low), scale(measure.high))


def missing_share(sums: dict, counts: dict | None) -> Measure:
    counts = counts or {"missing": 0, "present": 0}
    return proportion(counts["missing"], counts["missing"] + counts["present"])


def drift_statistic(sums: dict, result) -> Measure:
    if result is None or result.statistic is None:
        return Measure(None, result.n_cur if result else 0)
    return Measure(result.statistic, result.n_cur)


def proportion(successes: int, n: int) -> Measure:
    measure = from_estimate(wilson_interval(successes, n))
    measure.successes = successes if n else None
    return measure


def mean(m: Moments) -> Measure:
    measure = from_estimate(mean_estimate(m))
    measure.moments = m
    return measure


def from_estimate(estimate: Estimate | None) -> Measure:
    if estimate is None:
        return Measure(None, 0)
    return Measure(estimate.value, estimate.n, finite(estimate.low), finite(estimate.high))
