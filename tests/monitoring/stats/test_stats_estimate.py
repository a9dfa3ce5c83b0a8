"""Estimated performance from score histograms, against scikit-learn on the same raw rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from monitoring.stats.auc import SCORE_BINS, score_bin_index, score_histogram
from monitoring.stats.estimate import (
    Versioned,
    all_score_histogram,
    bin_centres,
    binary_estimate,
    calibration_fit,
)


def labelled_rows(rng: np.random.Generator, n: int, shift: float = 0.0, concept: float = 0.0):
    """Scores with outcomes drawn from a known relation: P(positive | score) = score**1.5
    (a miscalibrated model), bent by ``concept``. ``shift`` moves the inputs (the scores)."""
    scores = np.clip(rng.beta(2 + 3 * shift, 2, size=n), 0, 1)
    chance = np.clip(scores**1.5 + concept * (0.5 - scores), 0, 1)
    outcome = (rng.uniform(size=n) < chance).astype(int)
    predicted = (scores >= 0.5).astype(int)
    return scores, predicted, outcome


def sklearn_calibration(scores, outcome):
    """scikit-learn's isotonic fit on the same binning: bin centres, positive share per bin,
    weighted by the bin's rows."""
    index = score_bin_index(scores, SCORE_BINS)
    count = np.bincount(index, minlength=SCORE_BINS)
    positives = np.bincount(index, weights=outcome, minlength=SCORE_BINS)
    present = count > 0
    iso = IsotonicRegression(out_of_bounds="clip")
    iso.fit(
        bin_centres()[present], positives[present] / count[present], sample_weight=count[present]
    )
    return iso


@pytest.fixture
def reference():
    rng = np.random.default_rng(1)
    scores, _, outcome = labelled_rows(rng, 20_000)
    return scores, outcome


def test_calibration_is_sklearns_isotonic_fit_on_the_bins(reference):
    scores, outcome = reference
    rates = calibration_fit(score_histogram(outcome, scores))
    iso = sklearn_calibration(scores, outcome)
    np.testing.assert_allclose(rates, iso.predict(bin_centres()), atol=1e-9)


def test_estimates_equal_an_independent_computation_on_the_raw_rows(reference):
    rng = np.random.default_rng(2)
    ref_scores, ref_outcome = reference
    rates = calibration_fit(score_histogram(ref_outcome, ref_scores))
    p_of = sklearn_calibration(ref_scores, ref_outcome).predict
    scores, predicted, _ = labelled_rows(rng, 5_000, shift=0.5)
    histogram = all_score_histogram(scores, predicted == 1, np.zeros(scores.size, bool))
    # the raw rows: each row's chance from its bin's centre
    p = p_of(bin_centres()[score_bin_index(scores)])
    tp, fp = p[predicted == 1].sum(), (1 - p[predicted == 1]).sum()
    fn, tn = p[predicted == 0].sum(), (1 - p[predicted == 0]).sum()
    expected = {
        "accuracy": (tp + tn) / scores.size,
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "f1": 2 * tp / (2 * tp + fp + fn),
        "roc_auc": roc_auc_score(
            np.r_[np.ones(scores.size), np.zeros(scores.size)],
            np.r_[scores, scores],
            sample_weight=np.r_[p, 1 - p],
        ),
    }
    for metric, value in expected.items():
        estimate = binary_estimate([Versioned(histogram, rates)], metric)
        assert estimate.value == pytest.approx(value, abs=1e-3), metric
        assert estimate.low <= estimate.value <= estimate.high
        assert estimate.n == scores.size


def test_versions_are_estimated_each_on_its_calibration_and_summed(reference):
    ref_scores, ref_outcome = reference
    rates = calibration_fit(score_histogram(ref_outcome, ref_scores))
    other = np.clip(rates * 0.5, 0, 1)  # another version, half as likely positive per score
    rng = np.random.default_rng(3)
    a_scores, a_pred, _ = labelled_rows(rng, 1000)
    b_scores, b_pred, _ = labelled_rows(rng, 3000)
    none = np.zeros(1000, bool)
    a = all_score_histogram(a_scores, a_pred == 1, none)
    b = all_score_histogram(b_scores, b_pred == 1, np.zeros(3000, bool))
    p = np.r_[rates[score_bin_index(a_scores)], other[score_bin_index(b_scores)]]
    predicted = np.r_[a_pred, b_pred]
    accuracy = (p[predicted == 1].sum() + (1 - p[predicted == 0]).sum()) / predicted.size
    both = binary_estimate([Versioned(a, rates), Versioned(b, other)], "accuracy")
    assert both.value == pytest.approx(accuracy, abs=1e-9)
    assert both.n == 4000


@pytest.mark.parametrize("metric", ["accuracy", "precision", "recall", "f1", "roc_auc"])
def test_realised_values_fall_in_the_interval_under_covariate_shift(reference, metric):
    # given a calibration on the reference, and windows whose inputs drift (scores move up)
    # while the relation between scores and outcomes holds
    ref_scores, ref_outcome = reference
    rates = calibration_fit(score_histogram(ref_outcome, ref_scores))
    rng = np.random.default_rng(4)
    inside = 0
    windows = 60
    for w in range(windows):
        scores, predicted, outcome = labelled_rows(rng, 800, shift=w / windows)
        histogram = all_score_histogram(scores, predicted == 1, np.ones(scores.size, bool))
        estimate = binary_estimate([Versioned(histogram, rates)], metric)
        tp = np.sum((predicted == 1) & (outcome == 1))
        fp = np.sum((predicted == 1) & (outcome == 0))
        fn = np.sum((predicted == 0) & (outcome == 1))
        realised = {
            "accuracy": np.mean(predicted == outcome),
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "roc_auc": roc_auc_score(outcome, scores),
        }[metric]
        inside += estimate.low <= realised <= estimate.high
    # then the realised value is inside the interval in at least 90% of windows
    assert inside / windows >= 0.9


def test_an_empty_window_has_no_estimate():
    empty = all_score_histogram(np.array([]), np.array([], bool), np.array([], bool))
    estimate = binary_estimate([Versioned(empty, np.full(SCORE_BINS, 0.5))], "accuracy")
    assert estimate.value is None and estimate.n == 0


def cbpe_roc_auc(scores: np.ndarray, chances: np.ndarray) -> float:
    """Expected ROC AUC on raw rows (as NannyML's CBPE): each row a positive of weight p and a
    negative of weight 1 - p, ordered by its raw score, ties counted half."""
    order = np.unique(scores, return_inverse=True)[1]
    positives = np.bincount(order, weights=chances)
    negatives = np.bincount(order, weights=1 - chances)
    below = np.cumsum(negatives) - negatives
    return float(positives @ (below + negatives / 2) / (positives.sum() * negatives.sum()))


def test_estimated_roc_auc_of_an_uncalibrated_score_is_cbpe_on_the_raw_rows():
    # given a reference whose scores are not calibrated (the truth is a distortion of the
    # score's logit, as in bench/estimate.py), and windows whose customers drifted upwards
    rng = np.random.default_rng(17)

    def rows(n: int, shift: float):
        logit = rng.normal(-0.8 + shift, 1.3, n)
        scores = (1 / (1 + np.exp(-logit))).round(4)
        chance = 1 / (1 + np.exp(-(1.4 * logit + 0.3)))
        return scores, (rng.uniform(size=n) < chance).astype(int)

    scores, outcome = rows(60_000, 0.0)
    rates = calibration_fit(score_histogram(outcome, scores))
    iso = IsotonicRegression(out_of_bounds="clip").fit(scores, outcome)
    gaps, realised_gaps = [], []
    for shift in (0.1, 0.3, 0.6):
        window, truth = rows(30_000, shift)
        histogram = all_score_histogram(window, window >= 0.5, np.zeros(window.size, bool))
        estimate = binary_estimate([Versioned(histogram, rates)], "roc_auc").value
        # then it is CBPE's on the raw rows (scikit-learn's isotonic fit), not biased below
        gaps.append(estimate - cbpe_roc_auc(window, iso.predict(window)))
        realised_gaps.append(estimate - roc_auc_score(truth, window))
    assert np.max(np.abs(gaps)) < 0.002, gaps
    assert abs(np.mean(realised_gaps)) < 0.005, realised_gaps


def test_the_roc_auc_interval_is_as_wide_as_the_realised_auc_spreads_while_calibration_holds(
    reference,
):
    # given a window of 4,000 scored predictions and the reference's calibration
    ref_scores, ref_outcome = reference
    rates = calibration_fit(score_histogram(ref_outcome, ref_scores))
    rng = np.random.default_rng(5)
    scores, predicted, _ = labelled_rows(rng, 4_000, shift=0.3)
    histogram = all_score_histogram(scores, predicted == 1, np.zeros(scores.size, bool))
    estimate = binary_estimate([Versioned(histogram, rates)], "roc_auc")
    # when the outcomes are drawn 400 times from the calibrated chances, row by row
    chance = rates[score_bin_index(scores)]
    realised = [roc_auc_score(rng.uniform(size=scores.size) < chance, scores) for _ in range(400)]
    # then the interval's bounds are the realised values' 2.5th and 97.5th percentiles
    low, high = np.percentile(realised, [2.5, 97.5])
    width = high - low
    assert estimate.low == pytest.approx(low, abs=0.1 * width)
    assert estimate.high == pytest.approx(high, abs=0.1 * width)
