"""Baseline against candidate (e.g. production against a canary) on one metric, from sums."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from monitoring.stats.moments import CONFIDENCE, Moments, z_value
from monitoring.stats.sensitivity import ALPHA, POWER, mde, z_sum


@dataclass(frozen=True)
class Comparison:
    """Candidate minus baseline.

    ``powered`` is True when the observed difference is at least the MDE of these sample sizes:
    a difference that large would be detected 80% of the time, so a non-significant result is
    not just noise hiding a change of that size. ``relative_difference`` is None for a 0 baseline.
    """

    baseline: float
    candidate: float
    difference: float
    relative_difference: float | None
    low: float
    high: float
    p_value: float
    mde: float
    powered: bool
    n_baseline: int
    n_candidate: int


def compare_proportions(
    *,
    k_base: int,
    n_base: int,
    k_cand: int,
    n_cand: int,
    confidence: float = CONFIDENCE,
    alpha: float = ALPHA,
    power: float = POWER,
) -> Comparison | None:
    """Two proportions: Wald interval of the difference, pooled two-proportion z-test.

    The pooled z-test equals Pearson's chi-square on the 2x2 table without continuity
    correction. The MDE uses the pooled proportion's std. None if either side is empty.
    """
    if n_base == 0 or n_cand == 0:
        return None
    p_base, p_cand = k_base / n_base, k_cand / n_cand
    diff = p_cand - p_base
    se_wald = math.sqrt(p_base * (1 - p_base) / n_base + p_cand * (1 - p_cand) / n_cand)
    pooled = (k_base + k_cand) / (n_base + n_cand)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_base + 1 / n_cand))
    p_value = 2 * stats.norm.sf(abs(diff) / se_pooled) if se_pooled > 0 else float(diff == 0)
    detectable = mde(
        std=math.sqrt(pooled * (1 - pooled)), n1=n_base, n2=n_cand, alpha=alpha, power=power
    )
    half = z_value(confidence) * se_wald
    return _comparison(
        p_base, p_cand, (diff - half, diff + half), float(p_value), detectable, (n_base, n_cand)
    )


def compare_means(
    *,
    baseline: Moments,
    candidate: Moments,
    confidence: float = CONFIDENCE,
    alpha: float = ALPHA,
    power: float = POWER,
) -> Comparison | None:
    """Two means: Welch's t-test and its t interval; None below two values on either side.

    The MDE uses z quantiles and the Welch standard error, sqrt(s1^2/n1 + s2^2/n2).
    """
    if baseline.n < 2 or candidate.n < 2:
        return None
    var_b, var_c = baseline.variance / baseline.n, candidate.variance / candidate.n
    se = math.sqrt(var_b + var_c)
    diff = candidate.mean - baseline.mean
    if se == 0:
        return _comparison(
            baseline.mean,
            candidate.mean,
            (diff, diff),
            float(diff == 0),
            0.0,
            (baseline.n, candidate.n),
        )
    result = stats.ttest_ind_from_stats(
        candidate.mean, candidate.std, candidate.n,
        baseline.mean, baseline.std, baseline.n,
        equal_var=False,
    )  # fmt: skip
    df = (var_b + var_c) ** 2 / (var_b**2 / (baseline.n - 1) + var_c**2 / (candidate.n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    detectable = z_sum(alpha=alpha, power=power) * se
    return _comparison(
        baseline.mean,
        candidate.mean,
        (diff - half, diff + half),
        float(result.pvalue),
        detectable,
        (baseline.n, candidate.n),
    )


def _comparison(
    base: float,
    cand: float,
    interval: tuple[float, float],
    p_value: float,
    detectable: float,
    sizes: tuple[int, int],
) -> Comparison:
    diff = cand - base
    return Comparison(
        baseline=base,
        candidate=cand,
        difference=diff,
        relative_difference=diff / abs(base) if base else None,
        low=float(interval[0]),
        high=float(interval[1]),
        p_value=p_value,
        mde=detectable,
        powered=bool(abs(diff) >= detectable),
        n_baseline=sizes[0],
        n_candidate=sizes[1],
    )
