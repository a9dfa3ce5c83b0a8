from __future__ import annotations

import numpy as np
import pytest

from monitoring.stats.histograms import (
    category_counts,
    decile_edges,
    merge_category_counts,
    merge_histograms,
    numeric_bin_edges,
    numeric_histogram,
    numeric_reference,
    rebin_counts,
)


def test_fine_edges_contain_the_deciles_and_are_sorted_and_unique():
    # given
    values = np.random.default_rng(1).lognormal(size=5000)
    # when
    edges = numeric_bin_edges(values)
    # then
    assert np.all(np.isin(decile_edges(values), edges))
    assert np.all(np.diff(edges) > 0)
    assert edges.size <= 1001 + 9
    assert edges[0] == values.min() and edges[-1] == values.max()


def test_ties_collapse_edges_instead_of_making_duplicate_edges():
    # given
    values = np.repeat([1.0, 2.0, 3.0], [500, 300, 200])
    # when
    deciles = decile_edges(values)
    fine = numeric_bin_edges(values)
    # then: deciles are numpy's (interpolated) quantiles, fine edges add the observed values
    assert np.array_equal(deciles, np.unique(np.quantile(values, np.arange(1, 10) / 10)))
    assert np.array_equal(fine, np.union1d(deciles, [1.0, 2.0, 3.0]))


def test_bins_are_right_closed_so_cumulative_counts_match_the_ecdf():
    # given
    rng = np.random.default_rng(2)
    reference = rng.integers(0, 20, 3000).astype(float)
    current = rng.integers(0, 25, 800).astype(float)
    edges = numeric_bin_edges(reference)
    # when
    histogram = numeric_histogram(current, edges)
    # then: counts up to edge e = number of values <= e
    cumulative = np.cumsum(histogram.counts)[:-1]
    expected = [(current <= e).sum() for e in edges]
    assert list(cumulative) == expected


def test_histogram_keeps_missing_apart_and_knows_mean_and_std():
    values = np.array([1.0, np.nan, 2.0, 4.0, np.nan])
    histogram = numeric_histogram(values, [1.5, 3.0])
    assert histogram.missing == 2
    assert histogram.n == 3
    assert list(histogram.counts) == [1, 1, 1]
    assert histogram.mean == pytest.approx(np.mean([1, 2, 4]), abs=1e-12)
    assert histogram.std == pytest.approx(np.std([1, 2, 4]), abs=1e-12)


def test_all_missing_values_make_an_empty_histogram():
    reference = numeric_reference([np.nan, np.nan])
    assert reference.edges.size == 0
    assert reference.histogram.n == 0
    assert reference.histogram.missing == 2
    assert np.isnan(reference.histogram.mean)


def test_merging_hourly_histograms_equals_the_histogram_of_all_values():
    # given
    rng = np.random.default_rng(3)
    edges = numeric_bin_edges(rng.normal(size=2000), n_bins=50)
    hours = [rng.normal(size=n) for n in (10, 0, 300)]
    # when
    merged = merge_histograms(numeric_histogram(h, edges) for h in hours)
    whole = numeric_histogram(np.concatenate(hours), edges)
    # then
    assert np.array_equal(merged.counts, whole.counts)
    assert np.allclose(merged.sums, whole.sums, rtol=1e-12, atol=1e-12)
    assert merged.sum_sq == pytest.approx(whole.sum_sq, rel=1e-12)


def test_merging_histograms_with_other_edges_is_refused():
    with pytest.raises(ValueError, match="edges"):
        merge_histograms([numeric_histogram([1.0], [0.0]), numeric_histogram([1.0], [2.0])])


def test_rebinning_to_the_deciles_equals_binning_raw_values_on_the_deciles():
    values = np.random.default_rng(4).exponential(size=10_000)
    reference = numeric_reference(values)
    direct = numeric_histogram(values, reference.deciles).counts
    assert np.array_equal(rebin_counts(reference.histogram, reference.deciles), direct)


def test_rebinning_needs_edges_that_exist():
    histogram = numeric_histogram([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="subset"):
        rebin_counts(histogram, [1.5])


def test_category_counts_keep_none_and_nan_as_missing():
    counts, missing = category_counts(["a", None, "b", "a", float("nan")])
    assert counts == {"a": 2, "b": 1}
    assert missing == 2
    assert merge_category_counts([counts, {"c": 1, "a": 1}]) == {"a": 3, "b": 1, "c": 1}
