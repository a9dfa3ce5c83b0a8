"""Drift over time, all windows tested at once, equals the one-window path (the drift API's) on
the same stored sketches, and SciPy on the raw values behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from factory.services import version_register
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.drift import (
    baseline_resolve,
    drift_scope,
    drift_series,
    drift_settings_set,
    feature_drift,
    model_drift_settings,
    window_features,
)
from monitoring.pipeline.bins import FREEZE_DAYS, bins_load
from tests.conftest import prediction

pytestmark = pytest.mark.django_db
DAYS = 4
PER_DAY = 300
REFERENCE_ROWS = 1500  # above 1000: normed Wasserstein and Jensen-Shannon by default
START = datetime(2026, 3, 2, tzinfo=UTC)
PLANS = ["basic", "plus", "premium"]


@pytest.fixture
def traffic(model):
    """A reference, then four days drifting a little more each day, the third day empty, and a
    category the reference never had on the last. Returns the raw values."""
    rng = np.random.default_rng(11)
    ref_age = rng.normal(40, 8, REFERENCE_ROWS).round(1)
    ref_plan = rng.choice(PLANS, REFERENCE_ROWS, p=[0.5, 0.3, 0.2])
    rows = [
        {"features": {"age": float(a), "plan": str(p)}}
        for a, p in zip(ref_age, ref_plan, strict=True)
    ]
    version_register(model=model, version="1.0.0", lineage={}, reference={"rows": rows})
    records, days = [], {}
    for day in (0, 1, 3):
        ages = rng.normal(40 + 3 * day, 8, PER_DAY).round(1)
        plans = rng.choice(PLANS + ["gold"] * (day == 3), PER_DAY)
        days[day] = {"age": ages, "plan": plans}
        for j in range(PER_DAY):
            at = START + timedelta(days=day, minutes=4 * j)
            features = {"age": float(ages[j]), "plan": str(plans[j])}
            records.append(prediction(day * PER_DAY + j, at=at, features=features))
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    return {"ref_age": ref_age, "ref_plan": ref_plan, "days": days}


def one_window_tests(model, start, end) -> dict:
    """Each feature's test over [start, end) the way the drift API computes it."""
    scope = drift_scope(model, None)
    bins = bins_load(model.pk)
    baseline = baseline_resolve(scope=scope, bins=bins)
    current = window_features(scope=scope, bins=bins, start=start, end=end, segment=None)
    settings = model_drift_settings(model)
    return {
        name: feature_drift(name, baseline.features.get(name), current[name], settings=settings)
        for name in current
    }


def assert_same(result, one) -> None:
    assert (result.method, result.n_cur, result.n_ref, result.drifted) == (
        one.method,
        one.n_cur,
        one.n_ref,
        one.drifted,
    )
    for field in ("statistic", "p_value", "psi", "max_error", "unseen_share"):
        expected, value = getattr(one, field), getattr(result, field)
        if expected is None:
            assert value is None, field
        else:
            assert value == pytest.approx(expected, rel=1e-9, nan_ok=True), field


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"numerical": {"method": "ks"}, "categorical": {"method": "chisquare"}},
        {"numerical": {"method": "psi"}, "categorical": {"method": "hellinger"}},
    ],
)
def test_every_window_tested_at_once_is_the_one_window_test(traffic, model, overrides):
    # given
    if overrides:
        drift_settings_set(model=model, settings=overrides)
    end = START + timedelta(days=DAYS)
    # when
    series = drift_series(model=model, granularity="day", start=START, end=end)
    # then
    assert series.windows == [START + timedelta(days=day) for day in range(DAYS)]
    for i, window in enumerate(series.windows):
        expected = one_window_tests(model, window, window + timedelta(days=1))
        for name in ("age", "plan"):
            result = series.features[name][i]
            if i == 2:  # a day without traffic is not tested
                assert result is None
                continue
            assert_same(result, expected[name])


def test_every_window_agrees_with_scipy_on_the_raw_values(traffic, model):
    series = drift_series(
        model=model, granularity="day", start=START, end=START + timedelta(days=DAYS)
    )
    ref_counts = {plan: int(np.sum(traffic["ref_plan"] == plan)) for plan in PLANS}
    for day, values in traffic["days"].items():
        age, plan = series.features["age"][day], series.features["plan"][day]
        # Normed Wasserstein from 1000-quantile bins: within a hundredth of SciPy's raw one.
        exact = stats.wasserstein_distance(traffic["ref_age"], values["age"]) / np.std(
            traffic["ref_age"]
        )
        assert age.method == "wasserstein"
        assert age.statistic == pytest.approx(exact, abs=0.011)
        # Jensen-Shannon on the reference's categories plus one bin for the unseen ones.
        current = [int(np.sum(values["plan"] == p)) for p in PLANS]
        unseen = PER_DAY - sum(current)
        expected = distance.jensenshannon(
            np.array([*ref_counts.values(), 0]) / REFERENCE_ROWS,
            np.array([*current, unseen]) / PER_DAY,
            base=2,
        )
        assert plan.method == "jensenshannon"
        assert plan.statistic == pytest.approx(expected, rel=1e-12)
        assert plan.unseen_share == pytest.approx(unseen / PER_DAY)
    assert series.features["plan"][3].unseen_share > 0


def test_without_a_reference_a_window_is_tested_once_until_its_sketches_change(model, monkeypatch):
    # given: no reference, so the baseline is the version's first days (kept in the cache)
    import monitoring.metrics.drift as drift

    rng = np.random.default_rng(2)
    records = [
        prediction(i, at=START + timedelta(minutes=20 * i), features={"age": float(age)})
        for i, age in enumerate(rng.normal(40, 8, 300).round(1))
    ]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    later = START + timedelta(days=FREEZE_DAYS + 1)  # after the baseline's days
    span = {"granularity": "day", "start": START, "end": later + timedelta(days=1)}
    first = drift_series(model=model, **span)
    tested = []
    real = drift.feature_cells
    monkeypatch.setattr(
        drift,
        "feature_cells",
        lambda feature, parts, settings: (
            tested.append((feature.name, len(parts))) or real(feature, parts, settings)
        ),
    )
    # when: read again, then after a prediction on a day past the baseline
    again = drift_series(model=model, **span)
    untouched = tested[:]
    late = prediction(999, at=later + timedelta(hours=5), features={"age": 70.0})
    records_ingest(model=model, kind="predictions", records=[late], enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    after = drift_series(model=model, **span)
    # then: nothing is tested again until a window's sketches change, then that window alone
    assert untouched == []
    assert again.features == first.features
    assert tested == [("age", 1)]
    assert first.features["age"][-1] is None and after.features["age"][-1].n_cur == 1
    assert after.features["age"][:-1] == first.features["age"][:-1]
