"""Version comparison and sensitivity (MDE) of a metric, from the same window sums as charts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime

from common.numbers import finite
from factory.models import MLModel, ModelVersion
from monitoring.metrics.drift import DriftError, drift_side
from monitoring.metrics.measures import Measure
from monitoring.metrics.registry import compared_keys, metric_find
from monitoring.metrics.series import metric_check, metric_series, metric_window
from monitoring.metrics.traffic import TrafficOverlap, traffic_overlap
from monitoring.metrics.windows import MetricError
from monitoring.stats.auc import hanley_mcneil_variance
from monitoring.stats.compare import (
    Comparison,
    compare_means,
    compare_normal,
    compare_proportions,
)
from monitoring.stats.moments import Moments
from monitoring.stats.sensitivity import mde, relative_mde, windows_to_detect

RELATIVE_CHANGES = (0.01, 0.02, 0.05, 0.1)


@dataclass(frozen=True)
class ComparisonSide:
    """One version's value of the metric over the window, and the observations behind it."""

    version: str
    value: float | None
    n: int


@dataclass(frozen=True)
class VersionComparison:
    """Candidate against baseline on one metric; the test's numbers are None when either side
    lacks the data to estimate it."""

    metric: str
    baseline: ComparisonSide
    candidate: ComparisonSide
    difference: float | None = None
    relative_difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    mde: float | None = None  # None where no finite change is detectable
    powered: bool | None = None
    traffic: TrafficOverlap | None = None
    # The same comparison on the hours and segments both versions served, when the versions
    # served different traffic and shared some of it.
    shared: VersionComparison | None = None


@dataclass(frozen=True)
class Sensitivity:
    """The smallest change between two windows of the typical size a test would see, and how
    many windows a side takes to see each relative change (None: never, for a zero baseline)."""

    metric: str
    granularity: str
    windows: int
    value: float | None = None
    n_per_window: float | None = None
    std: float | None = None
    mde_absolute: float | None = None
    mde_relative: float | None = None
    windows_to_detect: dict[float, int | None] = field(
        default_factory=lambda: dict.fromkeys(RELATIVE_CHANGES)
    )


def delta_keys() -> str:
    """The metrics compared with a delta-method (or quantile-based) variance of each side,
    listed as answers always have: the task metrics before the median label delay."""
    keys = compared_keys("delta")
    return ", ".join(sorted(keys, key=lambda key: not metric_find(key).tasks))


def comparable(metric: str) -> str:
    """proportion, mean, delta, auc or drift; MetricError for counts, which are not estimates."""
    entry = metric_find(metric)
    comparison = entry.comparison if entry else None
    if comparison is None:
        raise MetricError(
            f"{metric} cannot be compared between versions: it is a count or total, not an "
            f"estimate with a sampling error; use a proportion "
            f"({', '.join(compared_keys('proportion'))}, missing_rate:F), a mean "
            f"({', '.join(compared_keys('mean'))}, value:NAME), {delta_keys()}, roc_auc or drift:F"
        )
    return comparison


def comparison_report(
    *,
    model: MLModel,
    metric: str,
    baseline: str,
    candidate: str,
    start: datetime | None = None,
    end: datetime | None = None,
    segment: str | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> VersionComparison:
    """The comparison over the window, which traffic each version served in it, and, when
    they served different traffic, the comparison on the traffic they shared."""
    metric_check(model, metric)
    kind = comparable(metric)
    for version in (baseline, candidate):
        if not ModelVersion.objects.filter(model=model, version=version).exists():
            raise MetricError(f"{model.name} has no version {version!r}")
    window = {"model": model, "metric": metric, "start": start, "end": end, "segment": segment}
    tests = {"alpha": alpha, "power": power}
    comparison = sides_compare(kind, (baseline, candidate), window, tests)
    overlap = traffic_overlap(
        model=model, baseline=baseline, candidate=candidate, start=start, end=end, segment=segment
    )
    shared = None
    if overlap.confounded and overlap.shared and kind != "drift":
        shared = sides_compare(kind, (baseline, candidate), window, tests, shared=True)
    return replace(comparison, traffic=overlap, shared=shared)


def sides_compare(
    kind: str, versions: tuple[str, str], window: dict, tests: dict, *, shared: bool = False
) -> VersionComparison:
    """Baseline against candidate over the window; `shared` keeps each side to the hours and
    segments the other served too. Drift is compared on whole windows only: each version's
    statistic is against its own reference."""
    model, metric = window["model"], window["metric"]
    if kind == "drift":
        measures, result = compare_drift(
            model=model,
            feature=metric.partition(":")[2],
            versions=versions,
            window=(window["start"], window["end"], window["segment"]),
            **tests,
        )
    else:
        others = versions[::-1] if shared else (None, None)
        measures = [
            metric_window(
                model=model,
                metric=metric,
                start=window["start"],
                end=window["end"],
                version=version,
                segment=window["segment"],
                shared_with=other,
            )
            for version, other in zip(versions, others, strict=True)
        ]
        result = compare_sides(kind, *measures, **tests)
    sides = [
        ComparisonSide(version, measure.value, measure.n)
        for version, measure in zip(versions, measures, strict=True)
    ]
    return version_comparison(metric, *sides, result)


def version_comparison(
    metric: str, baseline: ComparisonSide, candidate: ComparisonSide, result: Comparison | None
) -> VersionComparison:
    if result is None:
        return VersionComparison(metric, baseline, candidate)
    return VersionComparison(
        metric,
        baseline,
        candidate,
        difference=result.difference,
        relative_difference=result.relative_difference,
        ci_low=result.low,
        ci_high=result.high,
        p_value=result.p_value,
        mde=finite(result.mde),
        powered=result.powered,
    )


def compare_sides(
    kind: str, base: Measure, cand: Measure, *, alpha: float, power: float
) -> Comparison | None:
    if kind == "proportion":
        if base.successes is None or cand.successes is None:
            return None
        return compare_proportions(
            k_base=base.successes,
            n_base=base.n,
            k_cand=cand.successes,
            n_cand=cand.n,
            alpha=alpha,
            power=power,
        )
    if kind == "mean":
        if base.moments is None or cand.moments is None:
            return None
        return compare_means(
            baseline=base.moments, candidate=cand.moments, alpha=alpha, power=power
        )
    if kind == "delta":
        return compare_variances(base, cand, alpha=alpha, power=power)
    return compare_aucs(base, cand, alpha=alpha, power=power)


def compare_variances(
    base: Measure, cand: Measure, *, alpha: float, power: float
) -> Comparison | None:
    if None in (base.value, cand.value, base.variance, cand.variance):
        return None
    return compare_normal(
        baseline=base.value,
        baseline_variance=base.variance,
        candidate=cand.value,
        candidate_variance=cand.variance,
        sizes=(base.n, cand.n),
        alpha=alpha,
        power=power,
    )


def compare_drift(
    *, model: MLModel, feature: str, versions: tuple[str, str], window: tuple, alpha, power
) -> tuple[list[Measure], Comparison | None]:
    """Each version's drift statistic against its own baseline, over the same window.

    Both sides must use the same test (a KS p-value and a Wasserstein distance do not
    compare): a model override for the feature makes sure of it.
    """
    start, end, segment = window
    sides, results = [], []
    for version in versions:
        try:
            result, variance = drift_side(
                model=model,
                feature=feature,
                version=version,
                start=start,
                end=end,
                segment=segment,
            )
        except DriftError as error:
            raise MetricError(str(error)) from None
        statistic = None if result is None else finite(result.statistic)
        sides.append(Measure(statistic, result.n_cur if result else 0, variance=variance))
        results.append(result)
    methods = {r.method for r in results if r is not None}
    if len(methods) > 1:
        raise MetricError(
            f"the versions test {feature} with different methods ({' and '.join(sorted(methods))})"
            f"; set a drift override for {feature} on the model so both use one"
        )
    return sides, compare_variances(*sides, alpha=alpha, power=power)


def compare_aucs(base: Measure, cand: Measure, *, alpha: float, power: float) -> Comparison | None:
    """Two AUCs of independent samples: z-test on the difference, Hanley-McNeil variances."""
    if base.value is None or cand.value is None or base.auc is None or cand.auc is None:
        return None
    return compare_normal(
        baseline=base.value,
        baseline_variance=hanley_mcneil_variance(base.value, *base.auc),
        candidate=cand.value,
        candidate_variance=hanley_mcneil_variance(cand.value, *cand.auc),
        sizes=(base.n, cand.n),
        alpha=alpha,
        power=power,
    )


def sensitivity_report(
    *,
    model: MLModel,
    metric: str,
    granularity: str = "day",
    alpha: float = 0.05,
    power: float = 0.8,
    start: datetime | None = None,
    end: datetime | None = None,
    version: str | None = None,
    segment: str | None = None,
) -> Sensitivity:
    """MDE between two windows of the typical size, and windows needed per relative change.

    The per-window n is the mean over windows with data; the standard deviation is that of one
    observation, pooled over the windows: sqrt(p(1 - p)) for proportions, the sample standard
    deviation for means.
    """
    metric_check(model, metric)
    kind = comparable(metric)
    if kind in ("auc", "drift"):
        raise MetricError(
            f"sensitivity is available for proportions, means and {delta_keys()}, not {metric}"
        )
    points = metric_series(
        model=model,
        metric=metric,
        granularity=granularity,
        start=start,
        end=end,
        version=version,
        segment=segment,
    )
    window = metric_window(
        model=model, metric=metric, start=start, end=end, version=version, segment=segment
    )
    return sensitivity_from(
        metric=metric,
        granularity=granularity,
        kind=kind,
        points=points,
        window=window,
        alpha=alpha,
        power=power,
    )


def sensitivity_from(
    *,
    metric: str,
    granularity: str,
    kind: str,
    points: list,
    window: Measure,
    alpha: float = 0.05,
    power: float = 0.8,
) -> Sensitivity:
    """The sensitivity report from a metric's window series and its value over the whole span
    (the model page passes those it has already computed)."""
    filled = [p for p in points if p.n > 0]
    if not filled or window.value is None:
        return Sensitivity(metric, granularity, len(filled))
    n = sum(p.n for p in filled) / len(filled)
    std = unit_std(kind, window)
    detectable = mde(std=std, n1=n, n2=n, alpha=alpha, power=power)
    return Sensitivity(
        metric,
        granularity,
        len(filled),
        value=window.value,
        n_per_window=n,
        std=std,
        mde_absolute=detectable,
        mde_relative=relative_mde(mde_value=detectable, baseline=window.value),
        windows_to_detect={
            change: windows_to_detect(
                relative_change=change,
                n_per_window=n,
                std=std,
                baseline_value=window.value,
                alpha=alpha,
                power=power,
            )
            for change in RELATIVE_CHANGES
        },
    )


def unit_std(kind: str, window: Measure) -> float:
    if kind == "proportion":
        p = window.value
        return math.sqrt(p * (1 - p))
    if kind == "delta":  # one observation's share of the estimate's variance
        return math.sqrt(window.variance * window.n) if window.variance is not None else 0.0
    moments: Moments = window.moments
    return moments.std if moments.n > 1 else 0.0
