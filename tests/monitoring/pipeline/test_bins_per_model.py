"""Bins frozen once per model: a feature that only a later version sends gets bins from its
own first days, and a reference registered after the bins were frozen is counted on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from factory.services import version_register
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import FeatureBins
from tests.conftest import prediction

pytestmark = pytest.mark.django_db
START = datetime(2026, 10, 1, tzinfo=UTC)


def whole(rng, mean: float, n: int) -> np.ndarray:
    """Whole numbers: every value lies on the fine edges frozen from them, so KS is exact."""
    return np.clip(np.round(rng.normal(mean, 10, n)), 30, 50).astype(int)


@pytest.fixture
def later_feature(model):
    """1.0.0 sends `age` for 8 days; 2.0.0 then also sends `income` for 14 days (its second
    week richer). Returns 2.0.0's incomes per week."""
    rng = np.random.default_rng(3)
    weeks = {0: whole(rng, 40, 300), 1: whole(rng, 44, 300)}
    records = [
        prediction(i, at=START + timedelta(hours=i), features={"age": 40}) for i in range(8 * 24)
    ]
    for week, incomes in weeks.items():
        for j, income in enumerate(incomes):
            at = START + timedelta(days=8 + 7 * week, minutes=30 * j)
            features = {"age": 40, "income": int(income)}
            records.append(prediction(1000 * (week + 1) + j, at=at, model_version="2.0.0",
                                      features=features))  # fmt: skip
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    return weeks


def day(n: int) -> str:
    return (START + timedelta(days=n)).isoformat()


def test_a_feature_a_later_version_adds_is_binned_from_its_own_first_days(
    later_feature, client_with
):
    # given
    assert FeatureBins.objects.get(name="income").kind == "numerical"
    # when: 2.0.0's second week against its first (its first 7 days, the default baseline)
    response = client_with("read").get(
        "/api/v1/models/churn/drift", {"version": "2.0.0", "start": day(15), "end": day(22)}
    )
    # then
    assert response.status_code == 200, response.content
    income = {f["name"]: f for f in response.json()["features"]}["income"]
    expected = stats.ks_2samp(later_feature[0], later_feature[1])
    assert (income["method"], income["max_error"]) == ("ks", 0)
    assert income["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
    assert income["p_value"] == pytest.approx(expected.pvalue, rel=1e-6)


def test_a_reference_registered_after_the_bins_is_counted_on_them(later_feature, client_with):
    # given: 2.0.0's reference arrives once its bins and histograms exist
    reference = whole(np.random.default_rng(8), 41, 400)
    rows = [{"features": {"age": 40, "income": int(v)}} for v in reference]
    version_register(
        model=FeatureBins.objects.get(name="income").model,
        version="2.0.0",
        lineage={"data": "q4"},
        reference={"rows": rows},
    )
    edges_before = bytes(FeatureBins.objects.get(name="income").edges)
    client = client_with("read")
    query = {"version": "2.0.0", "start": day(15), "end": day(22)}
    # when: read before and after the next job
    before = client.get("/api/v1/models/churn/drift", query).json()
    jobs_run(model_id=FeatureBins.objects.get(name="income").model_id)
    after = client.get("/api/v1/models/churn/drift", query).json()
    # then: the bins stay, and the reference is the test's baseline either way
    assert bytes(FeatureBins.objects.get(name="income").edges) == edges_before
    expected = stats.ks_2samp(reference, later_feature[1])
    for body in (before, after):
        assert body["reference"]["kind"] == "training" and body["reference"]["n"] == 400
        income = {f["name"]: f for f in body["features"]}["income"]
        assert income["statistic"] == pytest.approx(expected.statistic, rel=1e-12)
        assert income["p_value"] == pytest.approx(expected.pvalue, rel=1e-6)
