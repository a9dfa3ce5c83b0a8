"""Multiclass estimates from per-class score histograms, against scikit-learn on the same raw
rows: one-vs-rest isotonic calibration per class, expected counts per version summed, and an
interval that holds the realised value when the calibration holds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from monitoring.stats.auc import score_histogram
from monitoring.stats.estimate import (
    ClassVersioned,
    Versioned,
    all_score_histogram,
    multiclass_calibration_fit,
    multiclass_estimate,
)
from tests.monitoring.metrics.test_estimates_multiclass import calibrators, independent, rows

LABELS = ("a", "b", "c")


def reference_fit(scores, outcome) -> dict[str, np.ndarray]:
    return multiclass_calibration_fit(
        {
            label: score_histogram(outcome == k, scores[:, k], positive=True)
            for k, label in enumerate(LABELS)
        }
    )


def versioned(scores, predicted, rates: dict[str, np.ndarray], judged=None) -> ClassVersioned:
    judged = np.ones(len(scores), bool) if judged is None else judged
    return ClassVersioned(
        {
            label: Versioned(
                all_score_histogram(scores[:, k], predicted == k, judged), rates[label]
            )
            for k, label in enumerate(LABELS)
        }
    )


def test_two_versions_are_each_estimated_on_their_own_calibration_and_summed():
    # given two versions, calibrated on different references
    rng = np.random.default_rng(41)
    ref_1, ref_2 = rows(rng, 3000), rows(rng, 3000, shift=1.0)
    rates_1, rates_2 = reference_fit(ref_1[0], ref_1[2]), reference_fit(ref_2[0], ref_2[2])
    window_1, window_2 = rows(rng, 700, shift=0.3), rows(rng, 300, shift=0.8)
    parts = [
        versioned(window_1[0], window_1[1], rates_1),
        versioned(window_2[0], window_2[1], rates_2),
    ]
    # then each metric is the independent computation per version, its counts summed
    fit_1, fit_2 = calibrators(ref_1[0], ref_1[2]), calibrators(ref_2[0], ref_2[2])
    counts = [
        counts_of(window_1[0], window_1[1], fit_1),
        counts_of(window_2[0], window_2[1], fit_2),
    ]
    tp, predicted, members = (sum(c[i] for c in counts) for i in range(3))
    expected = {
        "accuracy": tp.sum() / 1000,
        "macro_f1": np.mean(2 * tp / (predicted + members)),
    }
    for metric in ("accuracy", "macro_f1"):
        estimate = multiclass_estimate(parts, metric)
        assert estimate.n == 1000
        assert estimate.value == pytest.approx(expected[metric], abs=1e-3)
        assert estimate.low < estimate.value < estimate.high
    # and one version alone is the API tests' independent computation
    alone = multiclass_estimate(parts[:1], "accuracy").value
    assert alone == pytest.approx(
        independent(window_1[0], window_1[1], fit_1)["accuracy"], abs=1e-3
    )


def counts_of(scores, predicted, fitted):
    """One version's expected true positives, predictions and members per class."""
    from monitoring.stats.auc import score_bin_index
    from monitoring.stats.estimate import bin_centres

    chance = np.column_stack(
        [fitted[k].predict(bin_centres()[score_bin_index(scores[:, k])]) for k in range(3)]
    )
    chance *= len(scores) / chance.sum()
    mine = predicted[:, None] == np.arange(3)
    return (chance * mine).sum(axis=0), mine.sum(axis=0), chance.sum(axis=0)


def test_the_interval_holds_the_realised_value_when_the_calibration_holds():
    # given a calibration, and 200 windows whose outcomes follow it (no concept shift)
    rng = np.random.default_rng(42)
    ref_scores, _, ref_outcome = rows(rng, 20000)
    rates = reference_fit(ref_scores, ref_outcome)
    inside = {"accuracy": [], "macro_f1": []}
    for _ in range(200):
        scores, predicted, outcome = rows(rng, 400, shift=0.4)
        part = versioned(scores, predicted, rates)
        realised = {
            "accuracy": accuracy_score(outcome, predicted),
            "macro_f1": f1_score(outcome, predicted, average="macro"),
        }
        for metric, value in realised.items():
            estimate = multiclass_estimate([part], metric)
            inside[metric].append(estimate.low <= value <= estimate.high)
    # then the realised value is inside the 95% interval in at least 90% of the windows
    for metric, hits in inside.items():
        assert np.mean(hits) >= 0.9, metric


def test_a_window_without_scored_predictions_has_no_estimate():
    rates = {label: np.zeros(1000) for label in LABELS}
    empty = versioned(np.zeros((0, 3)), np.zeros(0, int), rates)
    estimate = multiclass_estimate([empty], "accuracy")
    assert (estimate.value, estimate.n) == (None, 0)
