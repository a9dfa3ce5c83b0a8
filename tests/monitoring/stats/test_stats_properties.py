from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitoring.stats import distances as d
from monitoring.stats.histograms import numeric_histogram, numeric_reference
from monitoring.stats.performance import wilson_interval
from monitoring.stats.sensitivity import mde

counts = st.lists(st.integers(0, 10_000), min_size=1, max_size=30).filter(lambda c: sum(c) > 0)


@st.composite
def count_pairs(draw) -> tuple[list[int], list[int]]:
    ref = draw(counts)
    cur = draw(st.lists(st.integers(0, 10_000), min_size=len(ref), max_size=len(ref)))
    return ref, cur if sum(cur) > 0 else [1] * len(ref)


@given(counts, st.integers(1, 50))
def test_psi_of_identical_distributions_is_zero(ref, scale):
    assert d.psi_from_counts(ref, [c * scale for c in ref]) == 0.0


@given(count_pairs())
def test_psi_is_never_negative(pair):
    assert d.psi_from_counts(*pair) >= 0


@given(count_pairs())
def test_jensen_shannon_and_hellinger_distances_lie_in_zero_one(pair):
    assert 0 <= d.jensenshannon_from_counts(*pair) <= 1
    assert 0 <= d.hellinger_from_counts(*pair) <= 1 + 1e-12


@given(
    st.floats(0.01, 100),
    st.integers(2, 10**6),
    st.integers(1, 1000),
    st.sampled_from([(0.05, 0.8), (0.01, 0.9)]),
)
def test_mde_shrinks_as_the_windows_grow(std, n, extra, alpha_power):
    alpha, power = alpha_power
    smaller = mde(std=std, n1=n + extra, n2=n + extra, alpha=alpha, power=power)
    assert smaller < mde(std=std, n1=n, n2=n, alpha=alpha, power=power)


@given(st.integers(1, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_contains_the_estimate_within_zero_one(k_n):
    k, n = k_n
    estimate = wilson_interval(k, n)
    assert 0 <= estimate.low <= estimate.value <= estimate.high <= 1


finite = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(finite, min_size=1, max_size=60),
    st.lists(finite, min_size=1, max_size=60),
    st.integers(2, 20),
)
def test_binned_ks_brackets_the_exact_statistic(reference, current, n_bins):
    profile = numeric_reference(reference, n_bins=n_bins)
    binned = d.ks_from_histograms(profile.histogram, numeric_histogram(current, profile.edges))
    exact = stats.ks_2samp(reference, current).statistic
    assert binned.statistic - 1e-9 <= exact <= binned.statistic + binned.max_error + 1e-9
    if len(np.unique(reference)) <= n_bins:
        assert abs(binned.statistic - exact) <= 1e-9
