from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics
from sklearn.calibration import calibration_curve

from monitoring.stats.auc import (
    auc_delong,
    auc_from_histogram,
    calibration_bins,
    hanley_mcneil_variance,
    score_histogram,
)

BINNED_AUC_TOLERANCE = 0.002


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def scored(seed: int, n: int = 5000, separation: float = 1.0):
    y_true = rng(seed).integers(0, 2, n)
    logits = separation * y_true + rng(seed + 1).normal(size=n)
    return y_true, 1 / (1 + np.exp(-logits))


def delong_variance_by_definition(y_true, scores) -> float:
    """DeLong's variance from the O(n^2) pairwise kernel."""
    pos, neg = scores[y_true == 1], scores[y_true == 0]
    kernel = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = kernel.mean(axis=1), kernel.mean(axis=0)
    return np.var(v10, ddof=1) / pos.size + np.var(v01, ddof=1) / neg.size


def test_exact_auc_matches_sklearn():
    y_true, scores = scored(1)
    assert auc_delong(y_true, scores).value == pytest.approx(
        metrics.roc_auc_score(y_true, scores), abs=1e-9
    )


def test_exact_auc_counts_ties_half_like_sklearn():
    # given: scores rounded to one decimal, so many ties across classes
    y_true, scores = scored(2, n=800)
    scores = np.round(scores, 1)
    # when
    result = auc_delong(y_true, scores)
    # then
    assert result.value == pytest.approx(metrics.roc_auc_score(y_true, scores), abs=1e-9)


def test_delong_interval_uses_the_delong_variance():
    y_true, scores = scored(3, n=600)
    scores = np.round(scores, 2)
    result = auc_delong(y_true, scores)
    half = 1.959963984540054 * np.sqrt(delong_variance_by_definition(y_true, scores))
    assert (result.low, result.high) == pytest.approx(
        (result.value - half, result.value + half), abs=1e-9
    )


def test_auc_with_a_single_class_is_none():
    assert auc_delong([1, 1, 1], [0.2, 0.5, 0.9]) is None
    assert auc_from_histogram(score_histogram([0, 0], [0.1, 0.4])) is None


def test_auc_with_one_of_a_class_has_no_interval():
    result = auc_delong([1, 0, 0], [0.9, 0.5, 0.1])
    assert result.value == 1.0 and np.isnan(result.low)


@pytest.mark.parametrize(("seed", "separation"), [(4, 0.0), (5, 1.0), (6, 3.0), (7, 6.0)])
def test_binned_auc_is_within_its_bound_and_tolerance_of_sklearn(seed, separation):
    # given
    y_true, scores = scored(seed, n=100_000, separation=separation)
    # when
    result = auc_from_histogram(score_histogram(y_true, scores))
    # then
    exact = metrics.roc_auc_score(y_true, scores)
    assert abs(result.value - exact) <= result.max_error
    assert result.value == pytest.approx(exact, abs=BINNED_AUC_TOLERANCE)
    assert result.low <= result.value <= result.high


def test_binned_auc_interval_is_hanley_mcneil():
    y_true, scores = scored(8, n=3000)
    result = auc_from_histogram(score_histogram(y_true, scores))
    variance = hanley_mcneil_variance(result.value, result.n_pos, result.n_neg)
    assert result.high - result.value == pytest.approx(1.959963984540054 * np.sqrt(variance))
    # Hanley-McNeil and DeLong agree closely on binormal scores
    delong = auc_delong(y_true, scores)
    assert result.high - result.low == pytest.approx(delong.high - delong.low, rel=0.1)


def test_merged_score_histograms_give_the_auc_of_all_rows():
    y_true, scores = scored(9, n=4000)
    merged = score_histogram(y_true[:1500], scores[:1500]) + score_histogram(
        y_true[1500:], scores[1500:]
    )
    whole = auc_from_histogram(score_histogram(y_true, scores))
    assert auc_from_histogram(merged).value == pytest.approx(whole.value, abs=1e-12)


def test_calibration_bins_match_sklearn_calibration_curve():
    # given
    y_true, scores = scored(10, n=20_000, separation=2.0)
    # when
    bins = calibration_bins(score_histogram(y_true, scores), n_bins=10)
    # then
    observed, predicted = calibration_curve(y_true, scores, n_bins=10, strategy="uniform")
    assert [b.observed_rate.value for b in bins] == pytest.approx(list(observed), abs=1e-12)
    assert [b.mean_score for b in bins] == pytest.approx(list(predicted), abs=1e-12)
    assert sum(b.count for b in bins) == 20_000
    for b in bins:
        assert b.observed_rate.low <= b.observed_rate.value <= b.observed_rate.high


def test_calibration_bins_must_divide_the_fine_grid():
    with pytest.raises(ValueError, match="divide"):
        calibration_bins(score_histogram([1], [0.5]), n_bins=7)
