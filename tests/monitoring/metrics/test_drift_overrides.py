"""Per-model drift overrides: stored through the model endpoint, used by drift and drift:F."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from factory.models import AuditEntry, MLModel
from tests.monitoring.metrics.test_statistics import (
    DAY0,
    PLANS,
    reference_and_shifted_stored,
)

pytestmark = pytest.mark.django_db
DECILES = np.arange(1, 10) / 10
WINDOW = {"start": DAY0.isoformat(), "end": (DAY0 + timedelta(days=2)).isoformat()}


@pytest.fixture
def drifting(model):
    return reference_and_shifted_stored(model)


def psi_by_definition(reference: np.ndarray, current: np.ndarray) -> float:
    edges = np.unique(np.quantile(reference, DECILES))
    ref = np.bincount(np.searchsorted(edges, reference, side="left"), minlength=edges.size + 1)
    cur = np.bincount(np.searchsorted(edges, current, side="left"), minlength=edges.size + 1)
    ref_p = np.maximum(ref / ref.sum(), 1e-4)
    cur_p = np.maximum(cur / cur.sum(), 1e-4)
    return float(np.sum((cur_p - ref_p) * np.log(cur_p / ref_p)))


def features_of(client) -> tuple[dict, dict]:
    body = client.get("/api/v1/models/churn/drift", WINDOW).json()
    return {f["name"]: f for f in body["features"]}, body


def test_overrides_are_stored_shown_and_audited(writer, model):
    settings = {
        "numerical": {"method": "psi", "threshold": 0.25},
        "features": {"plan": {"method": "hellinger"}},
        "share_threshold": 0.75,
    }
    response = writer.patch("/api/v1/models/churn", {"drift": settings}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["drift"] == {
        "share_threshold": 0.75,
        "numerical": {"method": "psi", "threshold": 0.25},
        "features": {"plan": {"method": "hellinger", "threshold": None}},
    }
    assert writer.get("/api/v1/models/churn").json()["drift"]["share_threshold"] == 0.75
    entry = AuditEntry.objects.get(model=model, action="model.drift_settings")
    assert entry.after["numerical"]["method"] == "psi"


def test_a_model_without_overrides_shows_the_defaults(writer, model):
    body = writer.get("/api/v1/models/churn").json()
    assert body["drift"] == {"share_threshold": 0.5, "features": {}}


def test_a_model_can_be_created_with_overrides(writer, db):
    body = {
        "name": "fraud",
        "task": "binary_classification",
        "drift": {"categorical": {"method": "psi", "threshold": 0.2}},
    }
    response = writer.post("/api/v1/models", body, format="json")
    assert response.status_code == 201, response.content
    stored = MLModel.objects.get(name="fraud").drift_settings
    assert stored["categorical"] == {"method": "psi", "threshold": 0.2}


def test_the_drift_endpoint_uses_the_overrides(writer, model, drifting):
    reference, current = drifting
    ref_age, cur_age = reference["age"].dropna().to_numpy(), current["age"].dropna().to_numpy()
    # before: the default tests (KS on an 800-row reference, chi-square)
    before, _ = features_of(writer)
    assert before["age"]["method"] == "ks" and before["plan"]["method"] == "chisquare"
    # when: PSI with a high bar for numbers, Jensen-Shannon with a custom bar for plan
    writer.patch(
        "/api/v1/models/churn",
        {
            "drift": {
                "numerical": {"method": "psi", "threshold": 5.0},
                "features": {"plan": {"method": "jensenshannon", "threshold": 0.001}},
            }
        },
        format="json",
    )
    after, body = features_of(writer)
    # then: PSI by its definition on the reference deciles, judged at 5.0
    age = after["age"]
    assert age["method"] == "psi" and age["threshold"] == 5.0
    assert age["statistic"] == pytest.approx(psi_by_definition(ref_age, cur_age), abs=1e-12)
    assert age["drifted"] is (age["statistic"] >= 5.0)
    plan = after["plan"]
    ref_counts, cur_counts = reference["plan"].value_counts(), current["plan"].value_counts()
    expected = distance.jensenshannon(
        [ref_counts.get(p, 0) for p in PLANS] + [0],
        [cur_counts.get(p, 0) for p in PLANS] + [0],
        base=2,
    )
    assert plan["method"] == "jensenshannon" and plan["threshold"] == 0.001
    assert plan["statistic"] == pytest.approx(expected, abs=1e-12)
    assert plan["drifted"] is bool(expected >= 0.001)
    assert body["share_threshold"] == 0.5


def test_a_feature_override_wins_over_its_kind_and_misfits_are_reported(writer, drifting):
    reference, current = drifting
    settings = {
        "numerical": {"method": "wasserstein", "threshold": 100.0},
        "features": {"age": {"method": "ks", "threshold": 0.001}, "plan": {"method": "ks"}},
    }
    writer.patch("/api/v1/models/churn", {"drift": settings}, format="json")
    features, _ = features_of(writer)
    ks = stats.ks_2samp(reference["age"].dropna(), current["age"].dropna())
    assert features["age"]["method"] == "ks" and features["age"]["threshold"] == 0.001
    assert features["age"]["drifted"] is bool(ks.pvalue < 0.001)
    # KS does not apply to a category: the default test, and a note saying why
    assert features["plan"]["method"] == "chisquare"
    assert "does not apply to a categorical feature" in features["plan"]["note"]


def test_the_dataset_share_threshold_decides_dataset_drift(writer, drifting):
    # given: age drifts (KS), plan does not under a very high Jensen-Shannon bar
    settings = {"categorical": {"method": "jensenshannon", "threshold": 0.99}}
    writer.patch("/api/v1/models/churn", {"drift": settings}, format="json")
    features, body = features_of(writer)
    assert features["age"]["drifted"] is True and features["plan"]["drifted"] is False
    assert body["share_drifted"] == 0.5 and body["dataset_drifted"] is True
    # when: the whole dataset drifts only when every tested feature does
    writer.patch(
        "/api/v1/models/churn", {"drift": {**settings, "share_threshold": 1.0}}, format="json"
    )
    _, body = features_of(writer)
    # then
    assert body["share_threshold"] == 1.0 and body["dataset_drifted"] is False


def test_the_drift_metric_follows_the_override(writer, drifting):
    reference, current = drifting
    writer.patch("/api/v1/models/churn", {"drift": {"numerical": {"method": "psi"}}}, format="json")
    point = writer.get(
        "/api/v1/models/churn/metrics", {"metric": "drift:age", "granularity": "week", **WINDOW}
    ).json()["points"][0]
    expected = psi_by_definition(
        reference["age"].dropna().to_numpy(), current["age"].dropna().to_numpy()
    )
    assert point["value"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("drift", "fragment"),
    [
        ({"numerical": {"method": "chisquare"}}, "drift.numerical.method"),
        ({"categorical": {"method": "ks"}}, "drift.categorical.method"),
        ({"features": {"age": {"threshold": 0.1}}}, "a threshold needs its method"),
        ({"features": {"age": {"method": "ks", "threshold": 2}}}, "p-value threshold"),
        ({"numerical": {"method": "psi", "threshold": -1}}, ">= 0"),
        ({"share_threshold": 0}, "share_threshold"),
        ({"colour": "red"}, "unknown keys"),
        ("psi", "must be an object"),
    ],
)
def test_bad_overrides_are_400_with_the_field(writer, model, drift, fragment):
    response = writer.patch("/api/v1/models/churn", {"drift": drift}, format="json")
    assert response.status_code == 400, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    assert fragment in response.content.decode()
    assert MLModel.objects.get(pk=model.pk).drift_settings == {}


def test_only_drift_can_be_patched_and_only_with_the_scope(writer, client_with, model):
    response = writer.patch("/api/v1/models/churn", {"task": "regression"}, format="json")
    assert (
        response.status_code == 400
        and "only drift, estimation_reference and label_maturity" in response.content.decode()
    )
    reader = client_with("read")
    denied = reader.patch("/api/v1/models/churn", {"drift": {}}, format="json")
    assert denied.status_code == 403
    missing = writer.patch("/api/v1/models/nope", {"drift": {}}, format="json")
    assert missing.status_code == 404
