from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics

from monitoring.stats.moments import Moments, mean_estimate, moments
from monitoring.stats.performance import (
    BinaryCounts,
    binary_counts,
    binary_metrics,
    brier_estimate,
    brier_terms,
    confusion_matrix_from_counts,
    log_loss_estimate,
    log_loss_terms,
    multiclass_metrics,
    poisson_bounds,
    poisson_interval,
    regression_metrics,
    regression_sums,
    wilson_interval,
)


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def wilson_by_formula(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    center = (2 * n * p + z**2) / (2 * (n + z**2))
    half = z * np.sqrt(z**2 + 4 * n * p * (1 - p)) / (2 * (n + z**2))
    return center - half, center + half


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (0, 50), (7, 50), (50, 50), (333, 1000)])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_interval_matches_scipy_and_the_closed_form(k, n, confidence):
    estimate = wilson_interval(k, n, confidence=confidence)
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    z = stats.norm.ppf(0.5 + confidence / 2)
    assert estimate.value == k / n
    assert (estimate.low, estimate.high) == pytest.approx((expected.low, expected.high), abs=1e-9)
    assert (estimate.low, estimate.high) == pytest.approx(wilson_by_formula(k, n, z), abs=1e-9)


def test_wilson_interval_of_nothing_is_none():
    assert wilson_interval(0, 0) is None


def labelled_predictions(seed: int, n: int = 2000):
    y_true = rng(seed).integers(0, 2, n)
    scores = np.clip(0.3 * y_true + rng(seed + 1).uniform(0, 0.7, n), 0, 1)
    return y_true, scores, (scores >= 0.5).astype(int)


def test_binary_metrics_from_counts_match_sklearn_on_the_same_labels():
    # given
    y_true, _, y_pred = labelled_predictions(1)
    # when
    result = binary_metrics(binary_counts(y_true, y_pred))
    # then
    assert result.accuracy.value == pytest.approx(metrics.accuracy_score(y_true, y_pred), abs=1e-12)
    assert result.precision.value == pytest.approx(
        metrics.precision_score(y_true, y_pred), abs=1e-12
    )
    assert result.recall.value == pytest.approx(metrics.recall_score(y_true, y_pred), abs=1e-12)
    assert result.f1.value == pytest.approx(metrics.f1_score(y_true, y_pred), abs=1e-12)
    for estimate in (result.accuracy, result.precision, result.recall, result.f1):
        assert 0 <= estimate.low <= estimate.value <= estimate.high <= 1


def test_binary_counts_use_the_positive_label():
    counts = binary_counts(["yes", "no", "yes", "no"], ["yes", "yes", "no", "no"], positive="yes")
    assert counts == BinaryCounts(tp=1, fp=1, tn=1, fn=1)
    assert counts + counts == BinaryCounts(2, 2, 2, 2)


def test_f1_interval_is_the_wilson_interval_of_the_jaccard_index_mapped_to_f1():
    counts = BinaryCounts(tp=40, fp=10, tn=100, fn=20)
    jaccard = stats.binomtest(40, 70).proportion_ci(method="wilson")
    f1 = binary_metrics(counts).f1
    assert f1.value == pytest.approx(
        metrics.f1_score([1] * 60 + [0] * 10, [1] * 40 + [0] * 20 + [1] * 10)
    )
    assert f1.low == pytest.approx(2 * jaccard.low / (1 + jaccard.low), abs=1e-9)
    assert f1.high == pytest.approx(2 * jaccard.high / (1 + jaccard.high), abs=1e-9)


def test_a_single_class_leaves_undefined_metrics_as_none_where_sklearn_warns():
    # given: no positives at all, neither actual nor predicted
    y_true = y_pred = np.zeros(20, dtype=int)
    # when
    result = binary_metrics(binary_counts(y_true, y_pred))
    # then
    assert result.accuracy.value == 1.0
    assert result.precision is None and result.recall is None and result.f1 is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics.precision_score(y_true, y_pred)
    assert caught, "sklearn warns that precision is undefined here"


def test_an_empty_window_has_no_metrics():
    result = binary_metrics(BinaryCounts())
    assert result.n == 0 and result.accuracy is None and result.f1 is None


def test_log_loss_and_brier_from_sums_equal_sklearn():
    # given: includes scores of exactly 0 and 1, which sklearn clips
    y_true, scores, _ = labelled_predictions(3)
    scores[:5] = [0.0, 1.0, 0.0, 1.0, 0.5]
    # when
    log_loss = log_loss_estimate(moments(log_loss_terms(y_true, scores)))
    brier = brier_estimate(moments(brier_terms(y_true, scores)))
    # then
    assert log_loss.value == pytest.approx(metrics.log_loss(y_true, scores), rel=1e-12)
    assert brier.value == pytest.approx(metrics.brier_score_loss(y_true, scores), rel=1e-12)
    assert log_loss.low < log_loss.value < log_loss.high


def test_merged_hourly_sums_give_the_same_log_loss_as_all_rows():
    y_true, scores, _ = labelled_predictions(4)
    terms = log_loss_terms(y_true, scores)
    merged = moments(terms[:700]) + moments(terms[700:])
    assert log_loss_estimate(merged).value == pytest.approx(
        metrics.log_loss(y_true, scores), rel=1e-12
    )


def test_mean_estimate_is_the_normal_interval_with_scipy_standard_error():
    values = rng(5).gamma(2, size=500)
    estimate = mean_estimate(moments(values))
    low, high = stats.norm.interval(0.95, loc=np.mean(values), scale=stats.sem(values))
    assert estimate.value == pytest.approx(np.mean(values), rel=1e-12)
    assert (estimate.low, estimate.high) == pytest.approx((low, high), rel=1e-9)


def test_mean_of_one_value_has_no_interval_and_of_none_is_none():
    estimate = mean_estimate(Moments(1, 3.0, 9.0))
    assert estimate.value == 3.0 and np.isnan(estimate.low) and np.isnan(estimate.high)
    assert mean_estimate(Moments()) is None


def test_multiclass_accuracy_and_macro_f1_match_sklearn():
    # given
    y_true = rng(6).choice(["cat", "dog", "eel", "fox"], 3000, p=[0.4, 0.3, 0.2, 0.1])
    noise = rng(7).choice(["cat", "dog", "eel", "ant"], 3000)
    y_pred = np.where(rng(8).uniform(size=3000) < 0.6, y_true, noise)
    labels = sorted(set(y_true) | set(y_pred))
    matrix = metrics.confusion_matrix(y_true, y_pred, labels=labels)
    # when
    result = multiclass_metrics(matrix, labels)
    # then
    assert result.accuracy.value == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = metrics.f1_score(y_true, y_pred, average="macro")
        per_class = metrics.f1_score(y_true, y_pred, average=None, labels=labels)
    assert result.macro_f1 == pytest.approx(expected, abs=1e-12)
    assert result.f1_per_class == pytest.approx(list(per_class), abs=1e-12)


def test_multiclass_from_a_dict_of_counts_skips_absent_classes():
    # given: "c" is configured but never actual nor predicted
    counts = {("a", "a"): 5, ("a", "b"): 2, ("b", "b"): 3, ("c", "c"): 0}
    y_true = ["a"] * 7 + ["b"] * 3
    y_pred = ["a"] * 5 + ["b"] * 5
    # when
    result = multiclass_metrics(counts)
    # then
    assert result.labels == ["a", "b"]
    assert result.macro_f1 == pytest.approx(metrics.f1_score(y_true, y_pred, average="macro"))
    matrix, labels = confusion_matrix_from_counts(counts)
    assert labels == ["a", "b", "c"] and matrix.sum() == 10


def test_regression_metrics_from_sums_match_sklearn():
    # given: some actual values are 0, which MAPE skips
    y_true = rng(9).normal(10, 3, 1000)
    y_true[:25] = 0
    y_pred = y_true + rng(10).normal(0.5, 2, 1000)
    # when
    result = regression_metrics(regression_sums(y_true, y_pred))
    # then
    nonzero = y_true != 0
    assert result.mae.value == pytest.approx(metrics.mean_absolute_error(y_true, y_pred))
    assert result.rmse.value == pytest.approx(
        np.sqrt(metrics.mean_squared_error(y_true, y_pred)), rel=1e-12
    )
    assert result.mape.value == pytest.approx(
        metrics.mean_absolute_percentage_error(y_true[nonzero], y_pred[nonzero]), rel=1e-12
    )
    assert result.bias.value == pytest.approx(np.mean(y_pred - y_true), rel=1e-12)
    assert result.mape_skipped == 25 and result.n == 1000
    low, high = stats.norm.interval(
        0.95, loc=np.mean(y_pred - y_true), scale=stats.sem(y_pred - y_true)
    )
    assert (result.bias.low, result.bias.high) == pytest.approx((low, high), rel=1e-9)
    assert result.rmse.low < result.rmse.value < result.rmse.high


def test_regression_sums_merge_across_windows():
    y_true, y_pred = rng(11).normal(size=300), rng(12).normal(size=300)
    merged = regression_sums(y_true[:100], y_pred[:100]) + regression_sums(
        y_true[100:], y_pred[100:]
    )
    assert regression_metrics(merged).mae.value == pytest.approx(
        metrics.mean_absolute_error(y_true, y_pred), rel=1e-12
    )


def test_regression_on_an_empty_window_is_none():
    result = regression_metrics(regression_sums([], []))
    assert result.n == 0 and result.mae is None and result.rmse is None and result.mape is None


@pytest.mark.parametrize("count", [0, 1, 7, 130, 25_000])
def test_the_poisson_interval_is_exact_by_scipys_poisson_tails(count):
    # when
    found = poisson_interval(count)
    # then: under the upper bound a count <= k has chance 2.5%, under the lower one a count
    # >= k has (none below a count of 0)
    assert found.value == count and found.n == count
    assert stats.poisson.cdf(count, found.high) == pytest.approx(0.025, abs=1e-9)
    if count:
        assert stats.poisson.sf(count - 1, found.low) == pytest.approx(0.025, abs=1e-9)
    else:
        assert found.low == 0.0


def test_many_counts_bounds_at_once_are_each_counts_interval():
    counts = np.array([0, 1, 7, 130, 25_000])
    low, high = poisson_bounds(counts)
    for count, lo, hi in zip(counts.tolist(), low, high, strict=True):
        assert stats.poisson.cdf(count, hi) == pytest.approx(0.025, abs=1e-9)
        if count:
            assert stats.poisson.sf(count - 1, lo) == pytest.approx(0.025, abs=1e-9)
        else:
            assert lo == 0.0
