"""Version comparison and sensitivity (MDE) of a metric, from the same window sums as charts."""

from __future__ import annotations

import math
from datetime import datetime

from common.numbers import finite
from factory.models import MLModel, ModelVersion
from monitoring.metrics.drift import DriftError, drift_side
from monitoring.metrics.measures import Measure
from monitoring.metrics.registry import compared_keys, metric_find
from monitoring.metrics.series import metric_check, metric_series, metric_window
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
) -> dict:
    metric_check(model, metric)
    kind = comparable(metric)
    for version in (baseline, candidate):
        if not ModelVersion.objects.filter(model=model, version=version).exists():
            raise MetricError(f"{model.name} has no version {version!r}")
    if kind == "drift":
        sides, result = compare_drift(
            model=model,
            feature=metric.partition(":")[2],
            versions=(baseline, candidate),
            window=(start, end, segment),
            alpha=alpha,
            power=power,
        )
    else:
        sides = [
            metric_window(
                model=model, metric=metric, start=start, end=end, version=v, segment=segment
            )
            for v in (baseline, candidate)
        ]
        result = compare_sides(kind, *sides, alpha=alpha, power=power)
    body = {
        "metric": metric,
        "baseline": {"version": baseline, "value": sides[0].value, "n": sides[0].n},
        "candidate": {"version": candidate, "value": sides[1].value, "n": sides[1].n},
        **dict.fromkeys(
            ("difference", "relative_difference", "ci_low", "ci_high", "p_value", "mde", "powered")
        ),
    }
    if result is not None:
        body.update(
            difference=result.difference,
            relative_difference=result.relative_difference,
            ci_low=result.low,
            ci_high=result.high,
            p_value=result.p_value,
            mde=finite(result.mde),
            powered=result.powered,
        )
    return body


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
) -> dict:
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
) -> dict:
    """The sensitivity report from a metric's window series and its value over the whole span
    (the model page passes those it has already computed)."""
    filled = [p for p in points if p.n > 0]
    body = {
        "metric": metric,
        "granularity": granularity,
        "windows": len(filled),
        "value": None,
        "n_per_window": None,
        "std": None,
        "mde_absolute": None,
        "mde_relative": None,
        "windows_to_detect": {str(c): None for c in RELATIVE_CHANGES},
    }
    if not filled or window.value is None:
        return body
    n = sum(p.n for p in filled) / len(filled)
    std = unit_std(kind, window)
    detectable = mde(std=std, n1=n, n2=n, alpha=alpha, power=power)
    body.update(
        value=window.value,
        n_per_window=n,
        std=std,
        mde_absolute=detectable,
        mde_relative=relative_mde(mde_value=detectable, baseline=window.value),
        windows_to_detect={
            str(change): windows_to_detect(
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
    return body


def unit_std(kind: str, window: Measure) -> float:
    if kind == "proportion":
        p = window.value
        return math.sqrt(p * (1 - p))
    if kind == "delta":  # one observation's share of the estimate's variance
        return math.sqrt(window.variance * window.n) if window.variance is not None else 0.0
    moments: Moments = window.moments
    return moments.std if moments.n > 1 else 0.0
