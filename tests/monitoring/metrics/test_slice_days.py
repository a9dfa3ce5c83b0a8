"""A feature's slices day by day (the feature page's heatmap), from the stored day slice rows:
each cell equals pandas' metric on the raw rows of that category and day, categories by
frequency with (missing) last, and the same answer once the raw rows are gone."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.explain import feature_slice_days
from monitoring.metrics.windows import MetricError
from monitoring.models import Label, Prediction
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
DAY0 = NOW.replace(hour=0) - timedelta(days=5)
PLANS = ("basic", "standard", "premium", None)
SHARES = (0.5, 0.3, 0.15, 0.05)


def plan_traffic(model) -> pd.DataFrame:
    """Five days of 400 predictions with a categorical `plan` (some missing); premium goes
    wrong from the fourth day. Every outcome arrives an hour later."""
    rng = np.random.default_rng(4)
    n = 5 * 400
    day = np.repeat(np.arange(5), 400)
    plan = rng.choice(len(PLANS), size=n, p=SHARES)
    at = [
        DAY0 + timedelta(days=int(d), seconds=float(s))
        for d, s in zip(day, rng.uniform(0, 80000, n), strict=True)
    ]
    predicted = rng.integers(0, 2, n)
    broken = (plan == 2) & (day >= 3)
    right = rng.uniform(size=n) < np.where(broken, 0.3, 0.85)
    actual = np.where(right, predicted, 1 - predicted)
    predictions = [
        {
            "prediction_id": f"p-{i}",
            "timestamp": at[i].isoformat(),
            "model_version": "1.0.0",
            "prediction": int(predicted[i]),
            "score": 0.6,
            "features": {} if PLANS[plan[i]] is None else {"plan": PLANS[plan[i]]},
        }
        for i in range(n)
    ]
    outcomes = [
        {
            "prediction_id": f"p-{i}",
            "observed_at": (at[i] + timedelta(hours=1)).isoformat(),
            "outcome": int(actual[i]),
        }
        for i in range(n)
    ]
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    jobs_run(model_id=model.pk, now=NOW)
    names = [PLANS[p] or "(missing)" for p in plan]
    return pd.DataFrame(
        {
            "day": [DAY0 + timedelta(days=int(d)) for d in day],
            "plan": names,
            "correct": predicted == actual,
        }
    )


def slices_of(model):
    return feature_slice_days(
        model=model, feature="plan", metric="accuracy", start=DAY0, end=DAY0 + timedelta(days=5)
    )


def test_each_cell_is_the_metric_of_its_category_and_day_as_pandas_computes_it(model):
    # given
    rows = plan_traffic(model)
    # when
    found = slices_of(model)
    # then: categories by frequency, (missing) last; one column per day
    assert found.slices == ["basic", "standard", "premium", "(missing)"]
    assert found.days == [DAY0 + timedelta(days=d) for d in range(5)]
    expected = rows.pivot_table(index="plan", columns="day", values="correct", aggfunc="mean")
    counts = rows.pivot_table(index="plan", columns="day", values="correct", aggfunc="size")
    expected, counts = expected.loc[found.slices], counts.loc[found.slices]
    np.testing.assert_allclose(np.array(found.values, dtype=float), expected.to_numpy(), atol=1e-12)
    assert found.n == counts.to_numpy().tolist()
    # and the break shows where it is: premium, from the fourth day
    assert max(found.values[2][3:]) < 0.5 < min(found.values[0])


def test_the_answer_outlives_the_raw_rows(model):
    plan_traffic(model)
    before = slices_of(model)
    Label.objects.filter(model=model).delete()
    Prediction.objects.filter(model=model).delete()
    assert slices_of(model) == before


def test_a_metric_the_slices_cannot_add_up_is_refused_naming_it(model):
    plan_traffic(model)
    with pytest.raises(
        MetricError, match=r"metric 'roc_auc': the slices of a feature show .*accuracy"
    ):
        feature_slice_days(model=model, feature="plan", metric="roc_auc", start=None, end=None)
