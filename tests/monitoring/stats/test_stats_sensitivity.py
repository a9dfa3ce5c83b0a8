from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from monitoring.stats.sensitivity import (
    canary_split,
    mde,
    mde_canary,
    mde_proportion,
    relative_mde,
    windows_to_detect,
)


def power_toward_the_effect(*, effect: float, se: float, alpha: float) -> float:
    """Probability a two-sided z-test rejects on the side of the true effect."""
    return float(stats.norm.sf(stats.norm.isf(alpha / 2) - effect / se))


def two_sided_power(*, effect: float, se: float, alpha: float) -> float:
    critical = stats.norm.isf(alpha / 2)
    return float(stats.norm.sf(critical - effect / se) + stats.norm.cdf(-critical - effect / se))


@pytest.mark.parametrize(("alpha", "power"), [(0.05, 0.8), (0.01, 0.9), (0.1, 0.5)])
@pytest.mark.parametrize(("n1", "n2"), [(100, 100), (200, 800), (5000, 37)])
def test_a_z_test_at_the_mde_has_the_requested_power(alpha, power, n1, n2):
    # given
    std = 2.5
    effect = mde(std=std, n1=n1, n2=n2, alpha=alpha, power=power)
    se = std * math.sqrt(1 / n1 + 1 / n2)
    # then
    assert power_toward_the_effect(effect=effect, se=se, alpha=alpha) == pytest.approx(
        power, abs=1e-9
    )
    # the formula ignores rejections in the wrong direction, which are negligible
    assert two_sided_power(effect=effect, se=se, alpha=alpha) - power == pytest.approx(0, abs=1e-3)


def test_equal_windows_give_the_design_formula():
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert mde(std=3.0, n1=400, n2=400) == pytest.approx(z * 3.0 * math.sqrt(2 / 400), rel=1e-12)


def test_proportion_mde_uses_the_bernoulli_std():
    assert mde_proportion(p=0.1, n1=1000, n2=1000) == pytest.approx(
        mde(std=math.sqrt(0.09), n1=1000, n2=1000), rel=1e-12
    )


def test_a_20_percent_canary_splits_the_traffic_20_80():
    assert canary_split(10_000) == pytest.approx((2000, 8000))
    assert mde_canary(std=1.0, total_n=10_000) == pytest.approx(
        mde(std=1.0, n1=2000, n2=8000), rel=1e-12
    )
    # an uneven split sees less than an even one of the same total
    assert mde_canary(std=1.0, total_n=10_000) > mde(std=1.0, n1=5000, n2=5000)


def test_relative_mde_divides_by_the_baseline_and_refuses_zero():
    assert relative_mde(mde_value=0.02, baseline=-0.5) == pytest.approx(0.04)
    assert relative_mde(mde_value=0.02, baseline=0) is None


def test_an_empty_window_can_detect_nothing():
    assert mde(std=1.0, n1=0, n2=10) == math.inf


def test_windows_to_detect_is_the_fewest_pooled_windows_whose_mde_is_small_enough():
    # given
    kwargs = dict(n_per_window=500, std=0.4, baseline_value=0.2, alpha=0.05, power=0.8)
    # when
    k = windows_to_detect(relative_change=0.05, **kwargs)
    # then
    effect = 0.05 * 0.2
    assert mde(std=0.4, n1=k * 500, n2=k * 500) <= effect
    assert mde(std=0.4, n1=(k - 1) * 500, n2=(k - 1) * 500) > effect


def test_a_large_change_needs_one_window_and_a_zero_baseline_none():
    assert (
        windows_to_detect(relative_change=1.0, n_per_window=10_000, std=0.1, baseline_value=1.0)
        == 1
    )
    assert (
        windows_to_detect(relative_change=0.1, n_per_window=100, std=1.0, baseline_value=0.0)
        is None
    )


def test_mde_at_exactly_integer_windows_is_not_rounded_up():
    # given: an effect equal to the MDE of exactly 4 pooled windows
    effect = mde(std=1.0, n1=4 * 250, n2=4 * 250)
    # when
    k = windows_to_detect(relative_change=effect, n_per_window=250, std=1.0, baseline_value=1.0)
    # then
    assert k == 4
    assert np.isfinite(effect)
