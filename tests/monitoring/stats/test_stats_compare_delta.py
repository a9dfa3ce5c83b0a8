"""Variances behind compare for F1, macro F1, RMSE, the delay median and drift statistics:
against an independent delta-method computation and bootstraps of scikit-learn/NumPy on rows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as sk

from monitoring.stats.compare import (
    bootstrap_variance,
    compare_normal,
    f1_variance,
    macro_f1_variance,
    rmse_variance,
)
from monitoring.stats.delay import delay_counts, delay_median_variance
from monitoring.stats.distances import psi_from_counts
from monitoring.stats.histograms import (
    counts_resample,
    histogram_resample,
    numeric_histogram,
    numeric_reference,
)
from monitoring.stats.moments import moments
from monitoring.stats.performance import BinaryCounts, binary_counts, confusion_matrix_from_counts


def multinomial_delta_variance(function, counts: np.ndarray) -> float:
    """g' (diag(p) - p p') g / n with g the numerical gradient of function(p) at p = counts/n."""
    n = counts.sum()
    p = counts / n
    step = 1e-7
    gradient = np.array(
        [(function(p + step * e) - function(p - step * e)) / (2 * step) for e in np.eye(p.size)]
    )
    sigma = np.diag(p) - np.outer(p, p)
    return float(gradient @ sigma @ gradient / n)


def bootstrap_sd(rows: int, statistic, seed: int = 0, draws: int = 600) -> float:
    rng = np.random.default_rng(seed)
    return float(np.std([statistic(rng.integers(0, rows, rows)) for _ in range(draws)]))


def test_f1_variance_is_the_multinomial_delta_method():
    counts = BinaryCounts(tp=130, fp=40, tn=700, fn=55)
    cells = np.array([counts.tp, counts.fp, counts.tn, counts.fn], dtype=float)
    expected = multinomial_delta_variance(lambda p: 2 * p[0] / (2 * p[0] + p[1] + p[3]), cells)
    assert f1_variance(counts) == pytest.approx(expected, rel=1e-6)


def test_f1_standard_error_agrees_with_a_bootstrap_of_sklearn():
    rng = np.random.default_rng(1)
    actual = rng.uniform(size=3000) < 0.3
    predicted = np.where(rng.uniform(size=3000) < 0.8, actual, ~actual)
    counts = binary_counts(actual, predicted, positive=True)
    boot = bootstrap_sd(3000, lambda i: sk.f1_score(actual[i], predicted[i]))
    assert np.sqrt(f1_variance(counts)) == pytest.approx(boot, rel=0.1)


def test_f1_difference_interval_covers_the_truth_95_percent_of_the_time():
    # given: two versions whose true F1 differ, simulated 400 times
    rng = np.random.default_rng(2)
    truth = [(0.3, 0.85), (0.3, 0.8)]  # (positive rate, accuracy) per version
    true_f1 = []
    for rate, accuracy in truth:
        tp, fn, fp = rate * accuracy, rate * (1 - accuracy), (1 - rate) * (1 - accuracy)
        true_f1.append(2 * tp / (2 * tp + fp + fn))
    covered = 0
    for _ in range(400):
        sides = []
        for rate, accuracy in truth:
            actual = rng.uniform(size=1500) < rate
            predicted = np.where(rng.uniform(size=1500) < accuracy, actual, ~actual)
            counts = binary_counts(actual, predicted, positive=True)
            sides.append((sk.f1_score(actual, predicted), f1_variance(counts)))
        result = compare_normal(
            baseline=sides[0][0],
            baseline_variance=sides[0][1],
            candidate=sides[1][0],
            candidate_variance=sides[1][1],
            sizes=(1500, 1500),
        )
        covered += result.low <= true_f1[1] - true_f1[0] <= result.high
    # then: within the binomial spread of 95% over 400 runs
    assert 0.92 <= covered / 400 <= 0.98


def test_macro_f1_variance_is_the_multinomial_delta_method_and_matches_a_bootstrap():
    rng = np.random.default_rng(3)
    actual = rng.choice(["a", "b", "c"], 2500, p=[0.5, 0.3, 0.2])
    predicted = np.where(rng.uniform(size=2500) < 0.7, actual, rng.choice(["a", "b", "c"], 2500))
    pairs: dict = {}
    for a, p in zip(actual, predicted, strict=True):
        pairs[(a, p)] = pairs.get((a, p), 0) + 1
    matrix, _ = confusion_matrix_from_counts(pairs)

    def macro(p):
        cells = p.reshape(matrix.shape)
        size = cells.sum(axis=0) + cells.sum(axis=1)
        return float(np.mean(2 * np.diag(cells) / size))

    variance = macro_f1_variance(matrix)
    expected = multinomial_delta_variance(macro, matrix.ravel().astype(float))
    assert variance == pytest.approx(expected, rel=1e-5)
    boot = bootstrap_sd(2500, lambda i: sk.f1_score(actual[i], predicted[i], average="macro"))
    assert np.sqrt(variance) == pytest.approx(boot, rel=0.1)


def test_macro_f1_variance_with_a_single_class():
    # one class, all right: F1 is 1 and cannot move
    assert macro_f1_variance(np.array([[50]])) == 0.0
    assert macro_f1_variance(np.zeros((2, 2))) is None


def test_rmse_variance_is_the_delta_method_on_squared_errors_and_matches_a_bootstrap():
    rng = np.random.default_rng(4)
    errors = rng.standard_t(5, 4000)
    squared = moments(errors**2)
    mse = np.mean(errors**2)
    expected = np.var(errors**2, ddof=1) / errors.size / (4 * mse)
    assert rmse_variance(squared) == pytest.approx(expected, rel=1e-9)
    actual, predicted = np.zeros(errors.size), errors
    boot = bootstrap_sd(
        errors.size, lambda i: np.sqrt(sk.mean_squared_error(actual[i], predicted[i]))
    )
    assert np.sqrt(rmse_variance(squared)) == pytest.approx(boot, rel=0.15)
    assert rmse_variance(moments([0.0, 0.0])) == 0.0
    assert rmse_variance(moments([1.0])) is None


def test_median_delay_standard_error_matches_a_bootstrap_of_the_raw_median():
    rng = np.random.default_rng(5)
    delays = rng.exponential(3600, 5000)
    variance = delay_median_variance(delay_counts(delays))
    boot = bootstrap_sd(delays.size, lambda i: np.median(delays[i]))
    assert np.sqrt(variance) == pytest.approx(boot, rel=0.2)
    assert delay_median_variance(delay_counts([10.0])) is None


def test_bootstrap_of_bin_counts_matches_a_bootstrap_of_raw_rows_for_psi():
    # given: the current window's fine histogram on the reference's edges
    rng = np.random.default_rng(6)
    reference_values = rng.normal(size=5000)
    current_values = rng.normal(0.2, 1, 3000)
    reference = numeric_reference(reference_values)
    current = numeric_histogram(current_values, reference.edges)
    edges = reference.deciles
    ref_deciles = np.bincount(np.searchsorted(edges, reference_values), minlength=edges.size + 1)

    def psi_raw(values):
        counts = np.bincount(np.searchsorted(edges, values), minlength=edges.size + 1)
        return psi_from_counts(ref_deciles, counts)

    def psi_binned(generator):
        again = histogram_resample(current, generator)
        cumulative = np.concatenate([[0], np.cumsum(again.counts)])
        position = np.searchsorted(again.edges, edges)
        bounds = np.concatenate([[0], position + 1, [again.counts.size]])
        return psi_from_counts(ref_deciles, np.diff(cumulative[bounds]))

    # when
    variance = bootstrap_variance(psi_binned, draws=400)
    # then
    boot = bootstrap_sd(current_values.size, lambda i: psi_raw(current_values[i]))
    assert np.sqrt(variance) == pytest.approx(boot, rel=0.2)


def test_resampling_keeps_sizes():
    rng = np.random.default_rng(7)
    values = rng.normal(size=1000)
    histogram = numeric_histogram(values, np.quantile(values, np.linspace(0, 1, 50)))
    again = histogram_resample(histogram, rng)
    assert again.n == histogram.n and np.all(again.at_edges <= again.counts[:-1])
    counts = counts_resample({"a": 10, "b": 30}, rng)
    assert sum(counts.values()) == 40 and set(counts) == {"a", "b"}


def test_compare_normal_is_a_z_test():
    result = compare_normal(
        baseline=0.5,
        baseline_variance=0.0004,
        candidate=0.53,
        candidate_variance=0.0005,
        sizes=(100, 100),
    )
    se = np.sqrt(0.0009)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(0.03 / se), rel=1e-12)
    assert result.high - result.low == pytest.approx(2 * stats.norm.ppf(0.975) * se)
    assert result.mde == pytest.approx((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * se)
