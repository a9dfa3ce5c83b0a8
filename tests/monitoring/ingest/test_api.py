"""The ingestion contract of API.md, case by case."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.test import override_settings

from monitoring.models import IngestBatch, Outcome, Prediction, QuarantinedRecord
from tests.conftest import NOW, outcome, prediction

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/churn/predictions"
OUTCOMES_URL = "/api/v1/models/churn/outcomes"


def post_json(client, url, body):
    return client.post(url, json.dumps(body), content_type="application/json")


def test_valid_records_are_stored_and_the_receipt_counts_them(model, writer):
    response = post_json(writer, URL, {"records": [prediction(i) for i in range(3)]})
    assert response.status_code == 200
    body = response.json()
    assert body["received"] == 3 and body["accepted"] == 3
    assert body["duplicates"] == 0 and body["rejected"] == 0 and body["errors"] == []
    assert IngestBatch.objects.get(public_id=body["batch_id"]).accepted == 3
    stored = Prediction.objects.get(prediction_id="p-1")
    assert stored.timestamp == NOW and stored.score == 0.8 and stored.prediction == "1"
    assert stored.features == {"age": 40, "plan": "basic"}
    assert stored.version.version == "1.0.0" and not stored.version.has_lineage


def test_a_bare_array_is_accepted(model, writer):
    response = post_json(writer, URL, [prediction(1)])
    assert response.json()["accepted"] == 1


def test_invalid_records_are_reported_and_quarantined_while_valid_ones_are_kept(model, writer):
    records = [
        prediction(0),
        prediction(1, timestamp="2026-03-10T12:00:00"),  # no offset
        prediction(2, score=1.5),
        {"timestamp": NOW.isoformat(), "model_version": "1", "prediction": 1},  # no id
        prediction(4, features={"nested": {"a": 1}}),
        "not an object",
        prediction(6, prediction=None),
    ]
    body = post_json(writer, URL, records).json()
    assert (body["accepted"], body["rejected"]) == (1, 6)
    by_index = {error["index"]: error for error in body["errors"]}
    assert by_index[1]["field"] == "timestamp" and "offset" in by_index[1]["message"]
    assert by_index[1]["prediction_id"] == "p-1" and by_index[1]["code"] == "invalid"
    assert by_index[2]["field"] == "score"
    assert by_index[3]["field"] == "prediction_id" and by_index[3]["code"] == "required"
    assert by_index[4]["field"] == "features.nested"
    assert by_index[5]["field"] == ""
    assert by_index[6]["field"] == "prediction" and by_index[6]["code"] == "required"
    quarantined = QuarantinedRecord.objects.order_by("index")
    assert [q.index for q in quarantined] == [1, 2, 3, 4, 5, 6]
    assert json.loads(quarantined[0].raw)["timestamp"] == "2026-03-10T12:00:00"
    assert Prediction.objects.count() == 1


def test_errors_list_is_capped_at_100(model, writer):
    body = post_json(writer, URL, [prediction(i, score=2) for i in range(150)]).json()
    assert body["rejected"] == 150 and len(body["errors"]) == 100
    assert body["errors_truncated"] is True
    assert QuarantinedRecord.objects.count() == 150


def test_same_prediction_twice_is_a_duplicate_and_other_content_a_conflict(model, writer):
    post_json(writer, URL, [prediction(1), prediction(2)])
    body = post_json(writer, URL, [prediction(1), prediction(2, score=0.1), prediction(3)]).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 1)
    assert body["errors"] == [
        {
            "index": 1,
            "prediction_id": "p-2",
            "code": "conflict",
            "field": "prediction_id",
            "message": body["errors"][0]["message"],
        }
    ]
    assert Prediction.objects.get(prediction_id="p-2").score == 0.8
    assert QuarantinedRecord.objects.get().code == "conflict"


def test_duplicate_within_one_request_counts_once(model, writer):
    body = post_json(writer, URL, [prediction(1), prediction(1), prediction(1, score=0.2)]).json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (1, 1, 1)
    assert Prediction.objects.count() == 1


def test_outcome_duplicates_conflicts_and_corrections(model, writer):
    first = post_json(writer, OUTCOMES_URL, [outcome(1)]).json()
    again = post_json(writer, OUTCOMES_URL, [outcome(1)]).json()
    other = post_json(writer, OUTCOMES_URL, [outcome(1, outcome=0)]).json()
    later = NOW.replace(day=20)
    correction = post_json(writer, OUTCOMES_URL, [outcome(1, at=later, outcome=0)]).json()
    assert first["accepted"] == 1
    assert again["duplicates"] == 1
    assert other["rejected"] == 1 and other["errors"][0]["code"] == "conflict"
    assert correction["accepted"] == 1
    assert Outcome.objects.filter(prediction_id="p-1").count() == 2  # both versions kept


def test_outcome_needs_an_outcome_or_values(model, writer):
    record = {"prediction_id": "p", "observed_at": NOW.isoformat()}
    body = post_json(writer, OUTCOMES_URL, [record]).json()
    assert body["rejected"] == 1 and body["errors"][0]["field"] == "outcome"
    body = post_json(
        writer, OUTCOMES_URL, [outcome(1, outcome=None, values={"revenue": "much"})]
    ).json()
    assert body["errors"][0]["field"] == "values.revenue"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"records": [', "not valid JSON"),
        (b'{"records": [{"score": NaN}]}', "NaN"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"rows": []}', "records"),
    ],
)
def test_unreadable_bodies_are_400_and_store_nothing(model, writer, body, fragment):
    response = writer.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert fragment in response.json()["detail"]
    assert not IngestBatch.objects.exists()


def test_unknown_model_is_404(model, writer):
    response = post_json(writer, "/api/v1/models/nope/predictions", [prediction(1)])
    assert response.status_code == 404
    assert response.json()["title"] == "Not Found"


def test_unsupported_content_type_is_415(model, writer):
    response = writer.post(URL, b"<xml/>", content_type="application/xml")
    assert response.status_code == 415
    assert "application/xml" in response.json()["detail"]


@override_settings(CANARY_MAX_RECORDS=5)
def test_too_many_records_is_413(model, writer):
    response = post_json(writer, URL, [prediction(i) for i in range(6)])
    assert response.status_code == 413
    assert not Prediction.objects.exists()


@override_settings(CANARY_MAX_UPLOAD_MB=1, DATA_UPLOAD_MAX_MEMORY_SIZE=1024 * 1024)
def test_body_over_the_size_limit_is_413(model, writer):
    big = [prediction(i, features={"text": "x" * 190}) for i in range(6000)]
    response = post_json(writer, URL, big)
    assert response.status_code == 413
    assert "1 MB" in response.json()["detail"]


def test_ndjson_body_with_one_broken_line(model, writer):
    lines = [json.dumps(prediction(1)), "{broken", json.dumps(prediction(2))]
    response = writer.post(URL, "\n".join(lines), content_type="application/x-ndjson")
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["errors"][0]["index"] == 1 and "line 2" in body["errors"][0]["message"]
    assert QuarantinedRecord.objects.get().raw == "{broken"


def test_csv_body_with_features_and_typed_cells(model, writer):
    text = (
        "prediction_id,timestamp,model_version,prediction,score,segment,age,plan,vip\n"
        "a,2026-03-10T12:00:00Z,1.0.0,1,0.9,web,41,basic,true\n"
        "b,2026-03-10T12:00:00Z,1.0.0,0,,web,,premium,false\n"
    )
    body = writer.post(URL, text, content_type="text/csv").json()
    assert body["accepted"] == 2
    a, b = Prediction.objects.order_by("prediction_id")
    assert a.features == {"age": 41, "plan": "basic", "vip": True} and a.segment == "web"
    assert b.score is None and b.features == {"age": None, "plan": "premium", "vip": False}


def test_csv_without_a_required_column_is_400(model, writer):
    text = "prediction_id,model_version,prediction\na,1,1\n"
    response = writer.post(URL, text, content_type="text/csv")
    assert response.status_code == 400
    assert "timestamp" in response.json()["detail"]


def test_parquet_outcomes(model, writer):
    table = pa.table(
        {
            "prediction_id": ["p-1", "p-2"],
            "observed_at": ["2026-03-12T00:00:00Z", "2026-03-12T00:00:00Z"],
            "outcome": [1, 0],
            "revenue": [10.5, 0.0],
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    response = writer.post(
        OUTCOMES_URL, buffer.getvalue(), content_type="application/vnd.apache.parquet"
    )
    assert response.json()["accepted"] == 2
    assert Outcome.objects.get(prediction_id="p-1").values == {"revenue": 10.5}


def test_parquet_with_a_wrong_schema_is_400(model, writer):
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": [1]}), buffer)
    response = writer.post(URL, buffer.getvalue(), content_type="application/vnd.apache.parquet")
    assert response.status_code == 400
    assert "prediction_id" in response.json()["detail"]


def test_create_model_and_conflict(db, writer):
    body = {"name": "fraud", "task": "binary_classification", "on_call": ["a@example.com"]}
    created = writer.post("/api/v1/models", body, format="json")
    assert created.status_code == 201 and created.json()["health"] == "no_data"
    again = writer.post("/api/v1/models", body, format="json")
    assert again.status_code == 409
    bad = writer.post("/api/v1/models", {"name": "Not a slug", "task": "x"}, format="json")
    assert bad.status_code == 400
    fields = {error["field"] for error in bad.json()["errors"]}
    assert fields == {"name", "task"}
