"""Baseline against candidate (e.g. production against a canary) on one metric, from sums.

How each metric's interval is made (two independent samples, one per version):

- proportions: Wald interval of the difference, pooled two-proportion z-test;
- means (mean score, log loss, Brier, MAE, MAPE, bias, values): Welch's t;
- F1, macro F1, RMSE: delta method from the same aggregates as the metric (confusion counts,
  sums of e^2 and e^4): each side's variance, a normal interval and z-test on the difference;
- ROC AUC: Hanley-McNeil variances, normal;
- label delay median: each side's standard error from the binned delays' quantiles at
  0.5 +- z / (2 sqrt(n)) (the order statistics that bound a median's distribution-free interval);
- drift statistics: a bootstrap of the current window's bin counts (multinomial, the baseline
  held fixed), normal on the difference.

``mde`` is ``(z_{1-alpha/2} + z_{power})`` times the difference's standard error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from monitoring.stats.moments import CONFIDENCE, Moments, z_value
from monitoring.stats.performance import BinaryCounts
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
        candidate.mean,
        candidate.std,
        candidate.n,
        baseline.mean,
        baseline.std,
        baseline.n,
        equal_var=False,
    )
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


def compare_normal(
    *,
    baseline: float,
    baseline_variance: float,
    candidate: float,
    candidate_variance: float,
    sizes: tuple[int, int],
    confidence: float = CONFIDENCE,
    alpha: float = ALPHA,
    power: float = POWER,
) -> Comparison:
    """Two independent estimates with known (estimated) variances: z-test and normal interval."""
    se = math.sqrt(baseline_variance + candidate_variance)
    diff = candidate - baseline
    p_value = 2 * stats.norm.sf(abs(diff) / se) if se > 0 else float(diff == 0)
    half = z_value(confidence) * se
    detectable = z_sum(alpha=alpha, power=power) * se
    return _comparison(
        baseline, candidate, (diff - half, diff + half), float(p_value), detectable, sizes
    )


def f1_variance(counts: BinaryCounts) -> float | None:
    """Delta-method variance of F1 = 2tp / (2tp + fp + fn) over multinomial rows.

    A row's influence on F1 is (2[tp] - F1 (2[tp] + [fp] + [fn])) / d with d = (2tp + fp + fn)
    / n; the variance is the mean squared influence over n, which reduces to
    (tp (2 - 2 F1)^2 + (fp + fn) F1^2) / (2tp + fp + fn)^2. None without positives.
    """
    denominator = 2 * counts.tp + counts.fp + counts.fn
    if denominator == 0:
        return None
    f1 = 2 * counts.tp / denominator
    return (counts.tp * (2 - 2 * f1) ** 2 + (counts.fp + counts.fn) * f1**2) / denominator**2


def macro_f1_variance(matrix: ArrayLike) -> float | None:
    """Delta-method variance of macro F1 from a confusion matrix (rows actual, counts).

    Per class F1_k = 2 C_kk / S_k with S_k = row_k + column_k; a row (actual i, predicted j)
    moves the macro average by g_ij = [(2 - 2 F1_i) / S_i if i = j, else -(F1_i / S_i + F1_j /
    S_j)] / K over the K classes present, and the variance is sum C_ij g_ij^2 (the n's cancel).
    """
    counts = np.asarray(matrix, dtype=float)
    size = counts.sum(axis=1) + counts.sum(axis=0)
    present = size > 0
    if not present.any():
        return None
    k = int(present.sum())
    safe = np.where(present, size, 1.0)
    f1 = np.where(present, 2 * np.diag(counts) / safe, 0.0)
    share = f1 / safe
    influence = -(share[:, None] + share[None, :])
    np.fill_diagonal(influence, (2 - 2 * f1) / safe)
    return float(np.sum(counts * (influence / k) ** 2))


def rmse_variance(squared_error: Moments) -> float | None:
    """Delta-method variance of RMSE = sqrt(mean e^2): Var(mean e^2) / (4 mean e^2).

    ``squared_error`` holds (n, sum e^2, sum e^4); Var(mean e^2) is the sample variance of e^2
    over n. None below two rows; 0 when every error is 0.
    """
    if squared_error.n < 2:
        return None
    mse = squared_error.mean
    if mse <= 0:
        return 0.0
    return squared_error.variance / squared_error.n / (4 * mse)


BOOTSTRAP_DRAWS = 200


def bootstrap_variance(
    statistic: Callable[[np.random.Generator], float | None],
    *,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> float | None:
    """Sample variance of ``statistic(rng)`` over ``draws`` replicates (each draws its own
    resample from ``rng``); None when fewer than two replicates give a finite value.

    A fixed seed makes the same question give the same answer.
    """
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng) for _ in range(draws)], dtype=float)
    values = values[np.isfinite(values)]
    return float(np.var(values, ddof=1)) if values.size >= 2 else None
