from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from monitoring.stats import distances as d
from monitoring.stats.drift import (
    FeatureDrift,
    categorical_feature_drift,
    categorical_feature_drift_raw,
    dataset_drift,
    numeric_feature_drift,
    numeric_feature_drift_raw,
)
from monitoring.stats.histograms import numeric_histogram, numeric_reference


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def binned_numeric(name, reference, current, **overrides) -> FeatureDrift:
    profile = numeric_reference(reference)
    window = numeric_histogram(current, profile.edges)
    return numeric_feature_drift(name=name, reference=profile, current=window, **overrides)


def test_small_numerical_reference_uses_ks_at_p_below_005():
    # given
    reference, current = rng(1).normal(size=1000), rng(2).normal(0.3, size=500)
    # when
    result = binned_numeric("age", reference, current)
    # then
    expected = stats.ks_2samp(reference, current)
    assert (result.method, result.threshold) == ("ks", 0.05)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert result.drifted is True
    assert result.psi == pytest.approx(d.psi_numeric(reference, current), abs=1e-12)


def test_large_numerical_reference_uses_normed_wasserstein_at_01():
    reference, current = rng(3).normal(size=1001), rng(4).normal(0.05, size=2000)
    result = numeric_feature_drift_raw(name="x", ref_values=reference, cur_values=current)
    expected = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert (result.method, result.threshold, result.p_value) == ("wasserstein", 0.1, None)
    assert result.statistic == pytest.approx(expected, abs=1e-12)
    assert result.drifted is bool(expected >= 0.1)


def test_the_method_and_threshold_can_be_overridden_per_feature():
    reference, current = rng(5).normal(size=5000), rng(6).normal(0.5, size=5000)
    result = binned_numeric("x", reference, current, method="psi", threshold=0.2)
    assert (result.method, result.threshold) == ("psi", 0.2)
    assert result.statistic == pytest.approx(d.psi_numeric(reference, current), abs=1e-12)
    assert result.drifted is bool(result.statistic >= 0.2)


@pytest.mark.parametrize("method", ["ks", "wasserstein", "psi", "jensenshannon", "hellinger"])
def test_binned_and_raw_numerical_drift_agree(method):
    reference, current = rng(7).normal(size=800), rng(8).normal(0.2, size=900)
    binned = binned_numeric("x", reference, current, method=method)
    raw = numeric_feature_drift_raw(
        name="x", ref_values=reference, cur_values=current, method=method
    )
    assert binned.statistic == pytest.approx(raw.statistic, abs=0.011)
    assert binned.drifted == raw.drifted


def test_a_method_for_the_other_kind_is_refused():
    with pytest.raises(ValueError, match="chisquare"):
        binned_numeric("x", [1.0, 2.0], [1.0], method="chisquare")
    with pytest.raises(ValueError, match="ks"):
        categorical_feature_drift(name="c", ref_counts={"a": 1}, cur_counts={"a": 1}, method="ks")


def test_missing_current_values_are_counted_and_left_out_of_the_test():
    reference = rng(9).normal(size=300)
    current = np.concatenate([rng(10).normal(size=200), [np.nan] * 7])
    result = binned_numeric("x", reference, current)
    assert (result.n_cur, result.missing_cur) == (200, 7)
    expected = stats.ks_2samp(reference, current[:200])
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_an_empty_or_all_missing_current_window_is_not_tested():
    reference = rng(11).normal(size=300)
    result = binned_numeric("x", reference, [np.nan, np.nan])
    assert result.statistic is None and result.p_value is None and result.psi is None
    assert result.drifted is None
    assert (result.n_ref, result.n_cur, result.missing_cur) == (300, 0, 2)


def test_an_all_missing_reference_is_not_tested():
    result = binned_numeric("x", [np.nan] * 10, [1.0, 2.0])
    assert result.drifted is None and result.n_ref == 0


def test_small_categorical_reference_uses_chisquare_like_evidently():
    # given
    reference = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    current = ["a"] * 40 + ["b"] * 45 + ["c"] * 15 + [None] * 3
    # when
    result = categorical_feature_drift_raw(name="plan", ref_values=reference, cur_values=current)
    # then
    expected = stats.chisquare([40, 45, 15], [50, 30, 20])
    assert (result.method, result.kind) == ("chisquare", "categorical")
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-12)
    assert result.drifted is bool(expected.pvalue < 0.05)
    assert (result.n_ref, result.n_cur, result.missing_cur, result.unseen_share) == (
        1000,
        100,
        3,
        0.0,
    )


def test_large_categorical_reference_uses_jensen_shannon_with_an_unseen_bin():
    # given
    ref_counts = {"a": 600, "b": 500}
    cur_counts = {"a": 50, "b": 30, "new": 20}
    # when
    result = categorical_feature_drift(name="c", ref_counts=ref_counts, cur_counts=cur_counts)
    # then
    expected = distance.jensenshannon([600 / 1100, 500 / 1100, 0], [0.5, 0.3, 0.2], base=2)
    assert (result.method, result.threshold) == ("jensenshannon", 0.1)
    assert result.statistic == pytest.approx(expected, abs=1e-12)
    assert result.unseen_share == pytest.approx(0.2)
    assert result.drifted is True
    assert result.psi == pytest.approx(d.psi_from_counts([600, 500, 0], [50, 30, 20]), abs=1e-12)


def test_a_single_category_on_both_sides_has_no_drift():
    result = categorical_feature_drift(name="c", ref_counts={"a": 10}, cur_counts={"a": 4})
    assert result.statistic == 0.0 and result.drifted is False
    assert result.psi == pytest.approx(0.0, abs=1e-15)


def test_an_unseen_category_under_chisquare_is_drift():
    result = categorical_feature_drift(name="c", ref_counts={"a": 10}, cur_counts={"z": 4})
    assert result.p_value == 0.0 and result.drifted is True
    assert result.unseen_share == 1.0


def make_result(name: str, drifted: bool | None) -> FeatureDrift:
    return FeatureDrift(
        name=name,
        kind="numerical",
        method="ks",
        statistic=None if drifted is None else 0.5,
        p_value=None,
        threshold=0.05,
        drifted=drifted,
        psi=None,
        n_ref=10,
        n_cur=0 if drifted is None else 10,
        missing_cur=0,
    )


def test_dataset_drifts_when_at_least_half_of_the_tested_features_drift():
    results = [make_result("a", True), make_result("b", False), make_result("c", None)]
    summary = dataset_drift(results)
    assert (summary.n_features, summary.n_tested, summary.n_drifted) == (3, 2, 1)
    assert summary.share_drifted == 0.5 and summary.drifted is True
    assert dataset_drift(results, share_threshold=0.75).drifted is False


def test_dataset_drift_without_any_tested_feature_is_unknown():
    assert dataset_drift([make_result("a", None)]).drifted is None
    assert dataset_drift([]).share_drifted is None
