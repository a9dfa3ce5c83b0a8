"""Edge cases from the statistics issue's list not covered elsewhere: tiny and empty windows,
a single class, all-new categories, and properties over random counts (Hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance
from sklearn import metrics as sk
from sklearn.exceptions import UndefinedMetricWarning

from monitoring.stats.compare import f1_variance
from monitoring.stats.drift import (
    FeatureDrift,
    categorical_feature_drift,
    categorical_feature_drift_raw,
    dataset_drift,
)
from monitoring.stats.performance import BinaryCounts, binary_counts, binary_metrics


def test_a_one_value_current_window_is_tested_like_scipy():
    reference = ["a"] * 6 + ["b"] * 4
    result = categorical_feature_drift_raw(name="c", ref_values=reference, cur_values=["b"])
    expected = stats.chisquare([0, 1], [0.6, 0.4])
    assert result.n_cur == 1
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-12)


def test_a_current_window_of_only_new_categories_is_as_far_as_can_be():
    ref = {f"k{i}": 100 for i in range(1200)}  # a large reference: Jensen-Shannon
    result = categorical_feature_drift(name="c", ref_counts=ref, cur_counts={"new": 50})
    assert result.method == "jensenshannon"
    assert result.statistic == pytest.approx(
        distance.jensenshannon([*ref.values(), 0], [0] * len(ref) + [50], base=2), abs=1e-12
    )
    assert result.statistic == pytest.approx(1.0) and result.unseen_share == 1.0


def test_f1_of_a_window_with_a_single_negative_class_is_undefined_not_zero():
    actual = np.zeros(20, dtype=bool)
    predicted = np.zeros(20, dtype=bool)
    counts = binary_counts(actual, predicted, positive=True)
    assert binary_metrics(counts).f1 is None  # sklearn warns and returns 0 by convention
    assert f1_variance(counts) is None
    with pytest.warns(UndefinedMetricWarning):
        sk.f1_score(actual, predicted, zero_division="warn")


def test_f1_of_a_perfect_window_has_no_sampling_variance():
    assert f1_variance(BinaryCounts(tp=30, fp=0, tn=70, fn=0)) == 0.0


@settings(max_examples=100, deadline=None)
@given(
    counts=st.lists(st.integers(1, 500), min_size=2, max_size=8).flatmap(
        lambda ref: st.tuples(
            st.just(ref), st.lists(st.integers(0, 500), min_size=len(ref), max_size=len(ref))
        )
    )
)
def test_categorical_statistics_equal_scipy_on_random_counts(counts):
    ref_list, cur_list = counts
    if sum(cur_list) == 0:
        cur_list = [*cur_list[:-1], 1]
    ref = {f"k{i}": c for i, c in enumerate(ref_list)}
    cur = {f"k{i}": c for i, c in enumerate(cur_list)}
    chi = categorical_feature_drift(name="c", ref_counts=ref, cur_counts=cur, method="chisquare")
    n_cur, n_ref = sum(cur_list), sum(ref_list)
    expected = stats.chisquare(cur_list, np.array(ref_list) * n_cur / n_ref)
    assert chi.statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert chi.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    js = categorical_feature_drift(name="c", ref_counts=ref, cur_counts=cur, method="jensenshannon")
    assert js.statistic == pytest.approx(
        distance.jensenshannon([*ref_list, 0], [*cur_list, 0], base=2), abs=1e-9
    )


def judged(drifted: bool | None) -> FeatureDrift:
    return FeatureDrift(
        name="f",
        kind="numerical",
        method="psi",
        statistic=None if drifted is None else 0.0,
        p_value=None,
        threshold=0.1,
        drifted=drifted,
        psi=None,
        n_ref=1,
        n_cur=1,
        missing_cur=0,
    )


@settings(max_examples=100, deadline=None)
@given(
    verdicts=st.lists(st.sampled_from([True, False, None]), max_size=30),
    share=st.floats(0.01, 1.0),
)
def test_dataset_drift_is_the_share_of_tested_features(verdicts, share):
    result = dataset_drift([judged(v) for v in verdicts], share_threshold=share)
    tested = [v for v in verdicts if v is not None]
    assert result.n_tested == len(tested) and result.n_features == len(verdicts)
    if not tested:
        assert result.share_drifted is None and result.drifted is None
    else:
        assert result.share_drifted == pytest.approx(sum(tested) / len(tested))
        assert result.drifted is (sum(tested) / len(tested) >= share)
