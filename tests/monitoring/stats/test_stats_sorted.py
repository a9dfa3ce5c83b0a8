"""Raw-array KS and Wasserstein on sorted arrays against SciPy, to 1e-9."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitoring.stats import distances as d
from monitoring.stats.drift import categorical_feature_drift_raw, numeric_feature_drift_raw
from monitoring.stats.histograms import category_counts

EXACT = 1e-9


def present(values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    return array[~np.isnan(array)]


def assert_matches_scipy(reference, current) -> None:
    ref, cur = present(reference), present(current)
    expected = stats.ks_2samp(ref, cur)
    ks = d.ks_test(reference, current)
    assert ks.statistic == pytest.approx(expected.statistic, abs=EXACT)
    assert ks.p_value == pytest.approx(expected.pvalue, abs=EXACT)
    norm = max(float(np.std(ref)), d.MIN_NORM_STD)
    wasserstein = stats.wasserstein_distance(ref, cur) / norm
    assert d.wasserstein_normed(reference, current) == pytest.approx(
        wasserstein, rel=EXACT, abs=EXACT
    )


@pytest.mark.parametrize(
    ("reference", "current"),
    [
        ([1.0], [2.0]),  # one value each
        ([1.0], [1.0, 2.0, 3.0]),
        ([3.0, 1.0], [2.0]),
        ([5.0, 5.0, 5.0], [5.0, 5.0]),  # identical constants
        ([0.0, 0.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0]),  # ties across samples
    ],
)
def test_tiny_samples_and_ties_match_scipy(reference, current):
    assert_matches_scipy(reference, current)


def test_integer_valued_samples_with_many_ties_match_scipy():
    generator = np.random.default_rng(11)
    reference = generator.poisson(3, 4000).astype(float)
    current = generator.poisson(3.3, 2500).astype(float)
    assert_matches_scipy(reference, current)


@pytest.mark.parametrize(("n_ref", "n_cur"), [(300, 300), (997, 1303), (20_000, 15_000)])
def test_continuous_samples_match_scipy_exact_and_asymptotic_p_values(n_ref, n_cur):
    # given: above 10,000 values ks_2samp switches to the asymptotic p-value; we must too
    generator = np.random.default_rng(n_ref)
    reference = generator.normal(0, 1, n_ref)
    current = generator.normal(0.1, 1.1, n_cur)
    # then
    assert_matches_scipy(reference, current)


def test_missing_values_are_left_out_and_counted():
    # given
    generator = np.random.default_rng(5)
    reference = generator.normal(size=500)
    current = generator.normal(0.5, size=400)
    current[::7] = np.nan
    # when
    result = numeric_feature_drift_raw(
        name="x", ref_values=reference, cur_values=current, method="ks"
    )
    # then
    expected = stats.ks_2samp(reference, current[~np.isnan(current)])
    assert result.statistic == pytest.approx(expected.statistic, abs=EXACT)
    assert result.p_value == pytest.approx(expected.pvalue, abs=EXACT)
    assert result.missing_cur == int(np.isnan(current).sum())
    assert result.n_cur == int((~np.isnan(current)).sum())
    assert_matches_scipy(reference, current)


def test_none_counts_as_missing_in_raw_numbers():
    reference = [1.0, 2.0, 3.0, None]
    current = [None, 2.5, None]
    result = numeric_feature_drift_raw(
        name="x", ref_values=reference, cur_values=current, method="wasserstein"
    )
    assert (result.n_ref, result.n_cur, result.missing_cur) == (3, 1, 2)
    assert result.statistic == pytest.approx(
        stats.wasserstein_distance([1, 2, 3], [2.5]) / np.std([1, 2, 3]), abs=EXACT
    )


def test_all_missing_current_gives_no_statistic():
    result = numeric_feature_drift_raw(name="x", ref_values=[1.0, 2.0], cur_values=[np.nan, np.nan])
    assert result.statistic is None and result.drifted is None
    assert result.missing_cur == 2
    assert math.isnan(d.ks_test([1.0, 2.0], [np.nan]).p_value)
    assert math.isnan(d.wasserstein_normed([np.nan], [1.0]))


def test_raw_psi_on_sorted_arrays_equals_the_definition():
    # given
    generator = np.random.default_rng(8)
    reference, current = generator.exponential(size=5000), generator.exponential(1.2, 3000)
    # when
    result = numeric_feature_drift_raw(name="x", ref_values=reference, cur_values=current)
    # then: deciles of the reference, right-closed bins, counted directly
    assert result.psi == pytest.approx(d.psi_numeric(reference, current), abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    reference=st.lists(
        st.integers(-5, 5) | st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60
    ),
    current=st.lists(
        st.integers(-5, 5) | st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60
    ),
)
def test_sorted_statistics_equal_scipy_on_any_sample(reference, current):
    ref, cur = np.array(reference, dtype=float), np.array(current, dtype=float)
    expected = stats.ks_2samp(ref, cur)
    ks = d.ks_sorted(np.sort(ref), np.sort(cur))
    assert ks.statistic == pytest.approx(expected.statistic, abs=EXACT)
    assert ks.p_value == pytest.approx(expected.pvalue, abs=EXACT)
    assert d.wasserstein_sorted(np.sort(ref), np.sort(cur)) == pytest.approx(
        stats.wasserstein_distance(ref, cur), rel=EXACT, abs=1e-9
    )


def test_string_categories_are_counted_by_numpy_like_the_loop():
    # given: strings with missing values as None and NaN
    values = np.array(["a", "b", None, "a", float("nan"), "c", "a"], dtype=object)
    # when
    counts, missing = category_counts(values)
    # then
    assert counts == {"a": 3, "b": 1, "c": 1}
    assert missing == 2
    assert all(type(key) is str for key in counts)


def test_mixed_categories_keep_their_python_keys():
    values = np.array([1, "1", 1, None], dtype=object)
    counts, missing = category_counts(values)
    assert counts == {1: 2, "1": 1}
    assert missing == 1


def test_categorical_raw_drift_on_arrays_matches_scipy_chisquare():
    # given
    generator = np.random.default_rng(3)
    reference = generator.choice(["x", "y", "z"], 900, p=[0.5, 0.3, 0.2]).astype(object)
    current = generator.choice(["x", "y", "z"], 700, p=[0.3, 0.3, 0.4]).astype(object)
    # when
    result = categorical_feature_drift_raw(name="c", ref_values=reference, cur_values=current)
    # then
    keys = ["x", "y", "z"]
    observed = np.array([(current == k).sum() for k in keys], dtype=float)
    expected = np.array([(reference == k).sum() for k in keys]) * current.size / reference.size
    assert result.method == "chisquare"
    assert result.p_value == pytest.approx(stats.chisquare(observed, expected).pvalue, abs=EXACT)
