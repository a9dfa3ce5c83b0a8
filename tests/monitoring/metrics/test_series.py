from __future__ import annotations

from datetime import timedelta

import pytest
from scipy.stats import binomtest

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from tests.conftest import NOW, outcome, prediction

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/churn/metrics"


@pytest.fixture
def traffic(model):
    day = NOW.replace(hour=0)
    records = [prediction(i, at=day + timedelta(minutes=i), prediction=1) for i in range(40)]
    records += [prediction(100 + i, at=day + timedelta(days=1), segment="app") for i in range(10)]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    labels = [outcome(i, outcome=int(i % 4 != 0)) for i in range(30)]  # 30 labelled, 22 right
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    return day


def test_accuracy_by_day_with_wilson_interval(writer, traffic):
    body = writer.get(URL, {"metric": "accuracy", "granularity": "day"}).json()
    assert body["model"] == "churn" and body["metric"] == "accuracy"
    first, second = body["points"]
    assert first["n"] == 30 and first["value"] == pytest.approx(22 / 30)
    interval = binomtest(22, 30).proportion_ci(method="wilson")
    assert first["ci_low"] == pytest.approx(interval.low, abs=1e-12)
    assert first["ci_high"] == pytest.approx(interval.high, abs=1e-12)
    assert first["label_coverage"] == pytest.approx(30 / 40)
    assert second["n"] == 0 and second["value"] is None  # nothing labelled yet
    assert first["start"] == traffic.isoformat().replace("+00:00", "Z")


def test_filters_and_windows(writer, traffic):
    params = {"metric": "predictions", "granularity": "hour", "segment": "app"}
    points = writer.get(URL, params).json()["points"]
    assert sum(p["n"] for p in points) == 10
    start = (traffic + timedelta(days=1)).isoformat()
    points = writer.get(URL, {"metric": "predictions", "start": start}).json()["points"]
    assert [p["value"] for p in points] == [10]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "metric parameter is required"),
        ({"metric": "nope"}, "unknown metric"),
        ({"metric": "accuracy", "granularity": "month"}, "granularity"),
        ({"metric": "accuracy", "start": "2026-03-01T00:00:00"}, "UTC offset"),
        ({"metric": "accuracy", "start": "yesterday"}, "RFC 3339"),
    ],
)
def test_bad_queries_are_400_with_a_reason(writer, traffic, params, fragment):
    response = writer.get(URL, params)
    assert response.status_code == 400
    assert fragment in response.json()["detail"]


def test_models_list_and_detail(writer, traffic):
    models = writer.get("/api/v1/models").json()
    assert models[0]["name"] == "churn"
    assert models[0]["versions"][0]["version"] == "1.0.0"
    assert models[0]["last_prediction_at"] is not None
    detail = writer.get("/api/v1/models/churn").json()
    assert detail["open_alerts"] == [] and detail["rollouts"] == []
    assert writer.get("/api/v1/models/nope").status_code == 404


def test_openapi_schema_is_served(writer, db):
    response = writer.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/v1/models/{model}/predictions" in response.content.decode()
    schema = response.json()
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert {"apiKey": []} in schema["paths"]["/api/v1/models"]["get"]["security"]
