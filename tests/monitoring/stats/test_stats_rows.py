"""The drift statistics of many windows at once (one row each) equal the one-window functions on
each row, and SciPy where SciPy has the statistic."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from monitoring.stats import distances as d
from monitoring.stats.codec import (
    histogram_decode,
    histogram_encode,
    histograms_decode,
    sparse_decode,
    sparse_decode_rows,
    sparse_encode,
)
from monitoring.stats.drift import (
    categorical_feature_drift,
    categorical_feature_drift_rows,
    numeric_feature_drift,
    numeric_feature_drift_rows,
)
from monitoring.stats.histograms import (
    histogram_rows,
    merge_histograms,
    numeric_histogram,
    numeric_reference,
    rebin_counts,
    rebin_counts_rows,
    rows_group_sum,
)
from monitoring.stats.quality import out_of_range_rows

RELATIVE = 1e-9


def assert_same_test(result, one) -> None:
    """Every field equal, the statistics to within float rounding (NaN equal to NaN)."""
    mine, theirs = asdict(result), asdict(one)
    assert mine.keys() == theirs.keys()
    for key, value in theirs.items():
        if isinstance(value, float):
            assert mine[key] == pytest.approx(value, rel=RELATIVE, nan_ok=True), key
        else:
            assert mine[key] == value, key


def windows_of(reference_values, sizes, shift=0.3, seed=1):
    """A reference profile and one current window per size (0: an empty window), drifting a
    little more each window; returns the raw values too."""
    rng = np.random.default_rng(seed)
    profile = numeric_reference(reference_values)
    raw = [rng.normal(shift * i, 1 + 0.1 * i, size).round(3) for i, size in enumerate(sizes)]
    histograms = [numeric_histogram(values, profile.edges) for values in raw]
    return profile, histogram_rows(histograms, profile.edges), histograms, raw


@pytest.fixture
def large():
    reference = np.random.default_rng(0).normal(0, 1, 5000).round(3)
    return windows_of(reference, [800, 0, 3000, 25, 12_000, 1])


@pytest.fixture
def small():
    """A reference of 400 values: every value on an edge, so binned KS is exact."""
    reference = np.random.default_rng(5).normal(0, 1, 400).round(2)
    return windows_of(reference, [50, 300, 0, 2000], seed=6)


def test_normed_wasserstein_of_every_window_is_scipys_on_the_bin_means(large):
    profile, rows, histograms, _ = large
    ref = profile.histogram
    values = d.wasserstein_normed_rows(ref, rows)
    for value, current in zip(values, histograms, strict=True):
        if current.n == 0:
            assert np.isnan(value)
            continue
        keep_ref, keep_cur = ref.counts > 0, current.counts > 0
        expected = stats.wasserstein_distance(
            ref.bin_means()[keep_ref],
            current.bin_means()[keep_cur],
            ref.counts[keep_ref],
            current.counts[keep_cur],
        ) / max(ref.std, d.MIN_NORM_STD)
        assert value == pytest.approx(expected, rel=RELATIVE)
        assert value == pytest.approx(
            d.wasserstein_normed_from_histograms(ref, current), rel=RELATIVE
        )


def test_binned_ks_of_every_window_is_scipys_exact_ks_on_the_raw_values(small):
    profile, rows, histograms, raw = small
    reference_values = np.random.default_rng(5).normal(0, 1, 400).round(2)
    statistic, p_value, max_error = d.ks_rows(profile.histogram, rows)
    for i, values in enumerate(raw):
        if values.size == 0:
            assert np.isnan(statistic[i]) and np.isnan(p_value[i])
            continue
        expected = stats.ks_2samp(reference_values, values)
        assert statistic[i] == pytest.approx(expected.statistic, abs=1e-12)
        assert p_value[i] == pytest.approx(expected.pvalue, rel=1e-6)
        assert max_error[i] == 0
        one = d.ks_from_histograms(profile.histogram, histograms[i])
        assert (one.statistic, one.p_value) == (statistic[i], p_value[i])


def test_binned_ks_of_large_windows_uses_scipys_asymptotic_p_value(large):
    profile, rows, histograms, _ = large
    statistic, p_value, _ = d.ks_rows(profile.histogram, rows)
    big = 4  # 12,000 values: above ks_2samp's exact limit
    n_ref, n_cur = profile.histogram.n, histograms[big].n
    effective = np.round(n_ref * n_cur / (n_ref + n_cur))
    assert p_value[big] == pytest.approx(stats.kstwo.sf(statistic[big], effective), rel=1e-12)


def test_decile_statistics_of_every_window_are_scipys_and_the_definitions(large):
    profile, rows, histograms, _ = large
    ref = rebin_counts(profile.histogram, profile.deciles)
    cur = rebin_counts_rows(rows, profile.deciles)
    psi, js, hellinger = (
        d.psi_rows(ref, cur),
        d.jensenshannon_rows(ref, cur),
        d.hellinger_rows(ref, cur),
    )
    for i, current in enumerate(histograms):
        assert list(cur[i]) == list(rebin_counts(current, profile.deciles))
        if current.n == 0:
            assert np.isnan(psi[i]) and np.isnan(js[i]) and np.isnan(hellinger[i])
            continue
        p, q = ref / ref.sum(), cur[i] / cur[i].sum()
        floored_p, floored_q = np.maximum(p, d.PSI_FLOOR), np.maximum(q, d.PSI_FLOOR)
        assert psi[i] == pytest.approx(
            np.sum((floored_q - floored_p) * np.log(floored_q / floored_p)), rel=RELATIVE
        )
        assert js[i] == pytest.approx(distance.jensenshannon(p, q, base=2), rel=RELATIVE)
        assert hellinger[i] == pytest.approx(
            np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2), rel=RELATIVE
        )


def test_chisquare_of_every_window_is_scipys_and_infinite_on_an_unseen_category():
    reference = {"basic": 500, "plus": 300, "premium": 200, "gone": 0}
    windows = [{"basic": 40, "plus": 35, "premium": 25}, {}, {"basic": 5, "new": 1}, {"plus": 9}]
    _, matrix = d.category_rows(reference, windows)
    statistic, p_value = d.chisquare_rows(reference, matrix)
    for i, counts in enumerate(windows):
        assert (statistic[i], p_value[i]) == pytest.approx(
            d.chisquare_categorical(reference, counts), nan_ok=True
        )
    observed, n = np.array([40, 35, 25]), 100
    expected = stats.chisquare(observed, np.array([500, 300, 200]) * n / 1000)
    assert (statistic[0], p_value[0]) == pytest.approx((expected.statistic, expected.pvalue))
    assert (statistic[2], p_value[2]) == (np.inf, 0.0)
    assert np.isnan(statistic[1])


@pytest.mark.parametrize("method", ["ks", "wasserstein", "psi", "jensenshannon", "hellinger"])
@pytest.mark.parametrize("data", ["small", "large"])
def test_numerical_drift_of_every_window_is_the_one_window_test(method, data, request):
    profile, rows, histograms, _ = request.getfixturevalue(data)
    results = numeric_feature_drift_rows(
        name="x", reference=profile, current=rows, method=method, threshold=0.07
    )
    for result, current in zip(results, histograms, strict=True):
        one = numeric_feature_drift(
            name="x", reference=profile, current=current, method=method, threshold=0.07
        )
        assert_same_test(result, one)


@pytest.mark.parametrize("method", [None, "chisquare", "psi", "jensenshannon", "hellinger"])
def test_categorical_drift_of_every_window_is_the_one_window_test(method):
    reference = {"basic": 500, "plus": 300, "premium": 200}
    windows = [{"basic": 40, "plus": 35, "premium": 25}, {}, {"basic": 5, "new": 1}, {"plus": 9}]
    missing = [3, 7, 0, 1]
    results = categorical_feature_drift_rows(
        name="plan", ref_counts=reference, cur_counts=windows, missing_cur=missing, method=method
    )
    for result, counts, lost in zip(results, windows, missing, strict=True):
        one = categorical_feature_drift(
            name="plan", ref_counts=reference, cur_counts=counts, missing_cur=lost, method=method
        )
        assert_same_test(result, one)


def test_many_encodings_decode_at_once_as_each_decodes_alone(large):
    profile, _, histograms, _ = large
    items = [histogram_encode(h) for h in histograms]
    rows = histograms_decode(items, profile.edges)
    for i, item in enumerate(items):
        one = histogram_decode(item, profile.edges)
        for field in ("counts", "at_edges", "sums"):
            assert np.array_equal(getattr(rows.row(i), field), getattr(one, field))
        assert (rows.sum_sq[i], rows.missing[i]) == (one.sum_sq, one.missing)
    arrays, scalars = sparse_decode_rows([sparse_encode([np.arange(4)], [2.5])], 4, (int,), 1)
    assert list(arrays[0][0]) == list(sparse_decode(sparse_encode([np.arange(4)]))[0][0])
    assert scalars[0][0] == 2.5


def test_an_encoding_of_another_shape_is_refused_by_name(large):
    profile, _, histograms, _ = large
    good = histogram_encode(histograms[0])
    with pytest.raises(ValueError, match="encoding 1 holds 1 arrays"):
        histograms_decode([good, sparse_encode([np.arange(3)])], profile.edges)


def test_rows_summed_by_window_are_the_merged_histograms(large):
    _, rows, histograms, _ = large
    group = np.array([0, 2, 0, 2, 0, 2])
    summed = rows_group_sum(rows, group, 3)
    for window in (0, 2):
        merged = merge_histograms(
            [h for h, g in zip(histograms, group, strict=True) if g == window]
        )
        assert np.array_equal(summed.counts[window], merged.counts)
        assert np.array_equal(summed.at_edges[window], merged.at_edges)
        assert np.allclose(summed.sums[window], merged.sums, rtol=1e-12)
        assert summed.missing[window] == merged.missing
    assert summed.n[1] == 0  # a window without rows is empty, not missing


def test_values_outside_the_reference_range_per_window_are_counted_from_the_raw_values(small):
    profile, rows, _, raw = small
    reference_values = np.random.default_rng(5).normal(0, 1, 400).round(2)
    below, above = out_of_range_rows(profile.histogram, rows)
    for i, values in enumerate(raw):
        assert below[i] == np.sum(values < reference_values.min())
        assert above[i] == np.sum(values > reference_values.max())
