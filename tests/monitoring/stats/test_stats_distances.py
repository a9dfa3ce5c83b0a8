from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from monitoring.stats import distances as d
from monitoring.stats.histograms import numeric_histogram, numeric_reference

DECILES = np.arange(1, 10) / 10
BINNED_KS_TOLERANCE = 1e-3
BINNED_WASSERSTEIN_TOLERANCE = 0.011


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def bin_counts_by_definition(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Right-closed, open-ended bins counted the slow, obvious way."""
    bounds = np.concatenate([[-np.inf], edges, [np.inf]])
    return np.array(
        [np.sum((values > lo) & (values <= hi)) for lo, hi in itertools.pairwise(bounds)]
    )


# --- PSI ---


def test_psi_uses_reference_deciles_and_the_definition():
    # given
    reference, current = rng(1).normal(size=3000), rng(2).normal(0.3, 1.2, size=2000)
    edges = np.unique(np.quantile(reference, DECILES))
    ref_p = bin_counts_by_definition(reference, edges) / reference.size
    cur_p = bin_counts_by_definition(current, edges) / current.size
    # when
    psi = d.psi_numeric(reference, current)
    # then: with no bin below the floor, PSI is the symmetric KL divergence
    assert min(ref_p.min(), cur_p.min()) > 1e-4
    assert psi == pytest.approx(
        stats.entropy(cur_p, ref_p) + stats.entropy(ref_p, cur_p), abs=1e-12
    )
    assert psi == pytest.approx(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)), abs=1e-12)


def test_psi_floors_empty_bins_at_one_in_ten_thousand():
    ref, cur = np.array([50.0, 50.0, 0.0]), np.array([0.0, 50.0, 50.0])
    floored_ref, floored_cur = np.array([0.5, 0.5, 1e-4]), np.array([1e-4, 0.5, 0.5])
    expected = np.sum((floored_cur - floored_ref) * np.log(floored_cur / floored_ref))
    assert d.psi_from_counts(ref, cur) == pytest.approx(expected, abs=1e-12)


def test_psi_from_fine_histograms_is_exactly_the_raw_psi():
    # given
    reference, current = rng(3).lognormal(size=20_000), rng(4).lognormal(0.1, size=7000)
    profile = numeric_reference(reference)
    window = numeric_histogram(current, profile.edges)
    # when
    binned = d.psi_from_counts(
        d.decile_counts_from_histogram(profile.histogram, profile.deciles),
        d.decile_counts_from_histogram(window, profile.deciles),
    )
    # then
    assert binned == pytest.approx(d.psi_numeric(reference, current), abs=1e-12)


# --- KS ---


def test_ks_on_raw_values_is_scipy_ks_2samp_ignoring_missing_values():
    reference = rng(5).normal(size=800)
    current = np.concatenate([rng(6).normal(0.2, size=300), [np.nan] * 5])
    expected = stats.ks_2samp(reference, current[~np.isnan(current)])
    result = d.ks_test(reference, current)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-12)


@pytest.mark.parametrize(("n_ref", "n_cur"), [(7, 7), (37, 55), (800, 1200), (9000, 10_000)])
def test_ks_p_value_from_the_statistic_is_scipy_exact_p_value(n_ref, n_cur):
    reference, current = rng(n_ref).normal(size=n_ref), rng(n_cur).normal(0.1, size=n_cur)
    expected = stats.ks_2samp(reference, current)
    assert d.ks_p_value(expected.statistic, n_ref, n_cur) == pytest.approx(
        expected.pvalue, rel=1e-9, abs=1e-12
    )


def test_ks_p_value_for_large_samples_is_scipy_asymptotic_p_value():
    reference, current = rng(7).normal(size=30_000), rng(8).normal(0.01, size=12_000)
    expected = stats.ks_2samp(reference, current)
    assert d.ks_p_value(expected.statistic, 30_000, 12_000) == pytest.approx(
        expected.pvalue, rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize(
    ("make_current", "seed"),
    [
        (lambda r: r.normal(size=100_000), 10),
        (lambda r: r.normal(0.02, size=100_000), 11),
        (lambda r: r.normal(0.1, 1.3, size=100_000), 12),
        (lambda r: r.standard_t(3, size=100_000), 13),
        (lambda r: r.normal(5, size=100_000), 14),
    ],
)
def test_binned_ks_is_within_its_bound_and_a_thousandth_of_scipy(make_current, seed):
    # given
    reference, current = rng(seed).normal(size=100_000), make_current(rng(seed + 100))
    profile = numeric_reference(reference)
    # when
    binned = d.ks_from_histograms(profile.histogram, numeric_histogram(current, profile.edges))
    exact = stats.ks_2samp(reference, current)
    # then
    error = exact.statistic - binned.statistic
    assert -1e-12 <= error <= binned.max_error + 1e-12
    assert abs(error) <= BINNED_KS_TOLERANCE
    assert binned.p_value == pytest.approx(d.ks_p_value(binned.statistic, 100_000, 100_000))


def test_binned_ks_is_exact_for_a_discrete_feature():
    # given: integer values, every one of them an edge
    reference = rng(15).poisson(4, size=5000).astype(float)
    current = rng(16).poisson(4.3, size=3000).astype(float)
    profile = numeric_reference(reference)
    # when
    binned = d.ks_from_histograms(profile.histogram, numeric_histogram(current, profile.edges))
    exact = stats.ks_2samp(reference, current)
    # then
    assert binned.statistic == pytest.approx(exact.statistic, abs=1e-12)
    assert binned.p_value == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("n_ref", "n_cur"), [(400, 600), (1000, 20_000), (30, 5)])
def test_binned_ks_with_a_small_reference_is_exact(n_ref, n_cur):
    # given: at most 1000 reference values (where KS is the default test), current continuous
    reference, current = rng(n_ref).normal(size=n_ref), rng(n_cur).normal(0.1, size=n_cur)
    profile = numeric_reference(reference)
    # when
    binned = d.ks_from_histograms(profile.histogram, numeric_histogram(current, profile.edges))
    exact = stats.ks_2samp(reference, current)
    # then
    assert np.all(np.isin(reference, profile.edges))
    assert binned.max_error == pytest.approx(0, abs=1e-12)
    assert binned.statistic == pytest.approx(exact.statistic, abs=1e-12)
    assert binned.p_value == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-12)


def test_binned_ks_counts_current_values_tied_with_reference_values():
    # given: a small continuous reference and a current window repeating some of its values
    reference = rng(26).normal(size=300)
    current = np.concatenate([reference[:50], rng(27).normal(size=100)])
    profile = numeric_reference(reference)
    # when
    binned = d.ks_from_histograms(profile.histogram, numeric_histogram(current, profile.edges))
    # then
    exact = stats.ks_2samp(reference, current)
    assert binned.statistic == pytest.approx(exact.statistic, abs=1e-12)
    assert binned.p_value == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-12)


# --- Wasserstein ---


def test_normed_wasserstein_divides_scipy_distance_by_the_population_std():
    reference, current = rng(19).gamma(2, size=2000), rng(20).gamma(2.5, size=1500)
    expected = stats.wasserstein_distance(reference, current) / np.std(reference, ddof=0)
    assert d.wasserstein_normed(reference, current) == pytest.approx(expected, abs=1e-12)


def test_normed_wasserstein_of_a_constant_reference_divides_by_a_thousandth():
    reference, current = np.full(100, 3.0), np.full(50, 3.5)
    assert d.wasserstein_normed(reference, current) == pytest.approx(0.5 / 0.001, rel=1e-12)


@pytest.mark.parametrize(
    ("make_reference", "make_current"),
    [
        (lambda r: r.normal(size=100_000), lambda r: r.normal(size=100_000)),
        (lambda r: r.normal(size=100_000), lambda r: r.normal(0.1, 1.1, size=100_000)),
        (lambda r: r.lognormal(size=100_000), lambda r: r.lognormal(0.2, size=100_000)),
        (lambda r: r.exponential(size=100_000), lambda r: r.normal(3, 2, size=100_000)),
        (lambda r: r.normal(size=100_000), lambda r: r.normal(20, size=100_000)),
    ],
)
def test_binned_normed_wasserstein_is_within_tolerance_of_scipy(make_reference, make_current):
    reference, current = make_reference(rng(21)), make_current(rng(22))
    profile = numeric_reference(reference)
    binned = d.wasserstein_normed_from_histograms(
        profile.histogram, numeric_histogram(current, profile.edges)
    )
    assert binned == pytest.approx(
        d.wasserstein_normed(reference, current), abs=BINNED_WASSERSTEIN_TOLERANCE
    )


# --- categorical ---


def test_chisquare_is_scipy_with_expected_from_reference_proportions():
    # given
    ref_counts = {"a": 500, "b": 300, "c": 200}
    cur_counts = {"a": 40, "b": 45, "c": 15}
    # when
    statistic, p_value = d.chisquare_categorical(ref_counts, cur_counts)
    # then
    expected = stats.chisquare([40, 45, 15], np.array([500, 300, 200]) / 1000 * 100)
    assert statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert p_value == pytest.approx(expected.pvalue, abs=1e-12)


def test_chisquare_ignores_reference_categories_missing_from_both_sides_correctly():
    # a category the current lacks still counts with observed 0
    statistic, p_value = d.chisquare_categorical({"a": 60, "b": 40}, {"a": 10})
    expected = stats.chisquare([10, 0], [6, 4])
    assert (statistic, p_value) == pytest.approx((expected.statistic, expected.pvalue), abs=1e-12)


def test_chisquare_with_an_unseen_category_is_infinite_with_p_zero():
    statistic, p_value = d.chisquare_categorical({"a": 5, "b": 5}, {"a": 5, "z": 1})
    assert math.isinf(statistic)
    assert p_value == 0.0


def test_categorical_bins_put_all_unseen_categories_in_one_last_bin():
    ref, cur = d.categorical_bins({"a": 3, "b": 1}, {"b": 2, "x": 1, "y": 4})
    assert list(ref) == [3, 1, 0]
    assert list(cur) == [0, 2, 5]
    assert d.unseen_share({"a": 3, "b": 1}, {"b": 2, "x": 1, "y": 4}) == pytest.approx(5 / 7)


def test_jensenshannon_and_hellinger_match_scipy():
    ref, cur = np.array([10, 20, 30, 0]), np.array([5, 25, 20, 3])
    p, q = ref / ref.sum(), cur / cur.sum()
    assert d.jensenshannon_from_counts(ref, cur) == pytest.approx(
        distance.jensenshannon(p, q, base=2), abs=1e-12
    )
    assert d.hellinger_from_counts(ref, cur) == pytest.approx(
        distance.euclidean(np.sqrt(p), np.sqrt(q)) / np.sqrt(2), abs=1e-12
    )


def test_jensenshannon_on_numbers_uses_the_decile_bins_and_binned_agrees():
    reference, current = rng(23).normal(size=5000), rng(24).normal(0.4, size=3000)
    edges = np.unique(np.quantile(reference, DECILES))
    p = bin_counts_by_definition(reference, edges) / reference.size
    q = bin_counts_by_definition(current, edges) / current.size
    raw = d.jensenshannon_numeric(reference, current)
    profile = numeric_reference(reference)
    binned = d.jensenshannon_from_counts(
        d.decile_counts_from_histogram(profile.histogram, profile.deciles),
        d.decile_counts_from_histogram(numeric_histogram(current, profile.edges), profile.deciles),
    )
    assert raw == pytest.approx(distance.jensenshannon(p, q, base=2), abs=1e-12)
    assert binned == pytest.approx(raw, abs=1e-12)
    assert d.hellinger_numeric(reference, current) == pytest.approx(
        distance.euclidean(np.sqrt(p), np.sqrt(q)) / np.sqrt(2), abs=1e-12
    )


# --- empty windows ---


def test_an_empty_current_window_gives_nan_not_an_exception():
    reference = rng(25).normal(size=100)
    profile = numeric_reference(reference)
    empty = numeric_histogram([np.nan, np.nan], profile.edges)
    assert math.isnan(d.psi_numeric(reference, []))
    assert math.isnan(d.ks_test(reference, [np.nan]).statistic)
    assert math.isnan(d.wasserstein_normed(reference, []))
    assert math.isnan(d.jensenshannon_numeric(reference, []))
    assert math.isnan(d.ks_from_histograms(profile.histogram, empty).p_value)
    assert math.isnan(d.wasserstein_normed_from_histograms(profile.histogram, empty))
    assert all(math.isnan(v) for v in d.chisquare_categorical({"a": 1}, {}))
    assert math.isnan(d.ks_p_value(0.5, 10, 0))
