"""Label maturity in the API: the model setting (PATCH, audited, 400 out of range), a rule's
own threshold, and each metrics point's share of its expected outcomes arrived."""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time

from factory.models import AuditEntry, MLModel
from monitoring.jobs import jobs_run
from tests.conftest import NOW, outcome, prediction

pytestmark = pytest.mark.django_db


def test_label_maturity_is_a_model_setting(writer, model):
    response = writer.patch("/api/v1/models/churn", {"label_maturity": 0.9}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["label_maturity"] == 0.9
    assert MLModel.objects.get(pk=model.pk).label_maturity == 0.9
    assert AuditEntry.objects.filter(action="model.label_maturity").exists()


@pytest.mark.parametrize("bad", [1.5, -0.1, "most"])
def test_a_label_maturity_out_of_range_is_400_naming_it(writer, model, bad):
    response = writer.patch("/api/v1/models/churn", {"label_maturity": bad}, format="json")
    assert response.status_code == 400
    assert "label_maturity" in response.content.decode()
    assert MLModel.objects.get(pk=model.pk).label_maturity == 0.8


def test_a_rule_has_its_own_label_maturity(writer, model):
    body = {"metric": "accuracy", "kind": "static", "lower": 0.7, "label_maturity": 0.5}
    response = writer.post("/api/v1/models/churn/alert-rules", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["label_maturity"] == 0.5
    body["label_maturity"] = 2
    response = writer.post("/api/v1/models/churn/alert-rules", body, format="json")
    assert response.status_code == 400 and "label_maturity" in response.content.decode()


def test_metrics_points_say_how_mature_each_window_is(writer, model):
    # given: 100 predictions a day for 30 days, each labelled 5 days later
    day0 = NOW.replace(hour=0) - timedelta(days=30)
    predictions = [
        prediction(d * 100 + j, at=day0 + timedelta(days=d, hours=j % 24))
        for d in range(30)
        for j in range(100)
    ]
    outcomes = [
        outcome(i, at=day0 + timedelta(days=i // 100 + 5, hours=i % 100 % 24))
        for i in range(3000)
        if day0 + timedelta(days=i // 100 + 5, hours=i % 100 % 24) <= NOW
    ]
    writer.post("/api/v1/models/churn/predictions", {"records": predictions}, format="json")
    writer.post("/api/v1/models/churn/outcomes", {"records": outcomes}, format="json")
    with freeze_time(NOW):
        jobs_run(model_id=model.pk, now=NOW)
        answer = writer.get("/api/v1/models/churn/metrics?metric=accuracy&granularity=day")
    points = answer.json()["points"]
    # then: old days are mature with every expected outcome, the last four have none yet
    assert points[0]["maturity"] == pytest.approx(1.0) and points[0]["mature"]
    assert all(p["maturity"] == 0 and not p["mature"] for p in points[-4:])
