from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from monitoring.stats.compare import compare_means, compare_proportions
from monitoring.stats.moments import Moments, moments
from monitoring.stats.sensitivity import mde


def test_proportions_use_a_pooled_z_test_equal_to_pearson_chi_square():
    # given
    k_base, n_base, k_cand, n_cand = 120, 1000, 85, 900
    # when
    result = compare_proportions(k_base=k_base, n_base=n_base, k_cand=k_cand, n_cand=n_cand)
    # then
    table = [[k_base, n_base - k_base], [k_cand, n_cand - k_cand]]
    chi2 = stats.chi2_contingency(table, correction=False)
    assert result.p_value == pytest.approx(chi2.pvalue, rel=1e-9)
    assert result.difference == pytest.approx(85 / 900 - 0.12, abs=1e-15)
    assert result.relative_difference == pytest.approx((85 / 900 - 0.12) / 0.12)


def test_proportion_difference_has_a_wald_interval_and_the_pooled_mde():
    result = compare_proportions(k_base=120, n_base=1000, k_cand=85, n_cand=900)
    p1, p2 = 0.12, 85 / 900
    se = np.sqrt(p1 * (1 - p1) / 1000 + p2 * (1 - p2) / 900)
    z = stats.norm.ppf(0.975)
    assert (result.low, result.high) == pytest.approx(
        (result.difference - z * se, result.difference + z * se), abs=1e-12
    )
    pooled = 205 / 1900
    assert result.mde == pytest.approx(mde(std=np.sqrt(pooled * (1 - pooled)), n1=1000, n2=900))
    assert result.powered is bool(abs(result.difference) >= result.mde)


def test_comparing_against_an_empty_side_gives_none():
    assert compare_proportions(k_base=0, n_base=0, k_cand=1, n_cand=2) is None
    assert compare_means(baseline=Moments(), candidate=moments([1.0, 2.0])) is None


def test_a_zero_baseline_has_no_relative_difference():
    result = compare_proportions(k_base=0, n_base=100, k_cand=3, n_cand=100)
    assert result.relative_difference is None
    assert 0 <= result.p_value <= 1


def test_means_use_welch_t_test_like_scipy():
    # given
    baseline_values = np.random.default_rng(1).normal(10, 2, 400)
    candidate_values = np.random.default_rng(2).normal(10.3, 3, 250)
    # when
    result = compare_means(baseline=moments(baseline_values), candidate=moments(candidate_values))
    # then
    expected = stats.ttest_ind(candidate_values, baseline_values, equal_var=False)
    from_stats = stats.ttest_ind_from_stats(
        candidate_values.mean(),
        candidate_values.std(ddof=1),
        250,
        baseline_values.mean(),
        baseline_values.std(ddof=1),
        400,
        equal_var=False,
    )
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.p_value == pytest.approx(from_stats.pvalue, rel=1e-9)
    interval = expected.confidence_interval(0.95)
    assert (result.low, result.high) == pytest.approx((interval.low, interval.high), rel=1e-9)
    assert result.difference == pytest.approx(candidate_values.mean() - baseline_values.mean())


def test_mean_mde_uses_the_welch_standard_error():
    baseline, candidate = moments([1.0, 2.0, 3.0, 4.0]), moments([2.0, 4.0, 6.0])
    result = compare_means(baseline=baseline, candidate=candidate)
    se = np.sqrt(baseline.variance / 4 + candidate.variance / 3)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert result.mde == pytest.approx(z * se, rel=1e-12)


def test_identical_constant_means_are_not_different():
    result = compare_means(baseline=moments([5.0, 5.0]), candidate=moments([5.0, 5.0, 5.0]))
    assert result.difference == 0 and result.p_value == 1.0
