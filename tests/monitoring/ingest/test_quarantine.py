"""The quarantine: list with filters and paging, download, repair by re-submission."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth import get_user_model

from monitoring.models import Outcome, Prediction, QuarantinedRecord
from tests.conftest import outcome, prediction

pytestmark = pytest.mark.django_db
BASE = "/api/v1/models/churn"


def post(client, kind, records):
    return client.post(f"{BASE}/{kind}", json.dumps(records), content_type="application/json")


@pytest.fixture
def rejected(model, writer):
    """Three bad predictions in one batch, one bad outcome in another."""
    first = post(
        writer,
        "predictions",
        [
            prediction(0),
            prediction(1, score=7),
            prediction(2, timestamp="yesterday"),
            "x",
            prediction(4),
        ],
    ).json()
    second = post(writer, "outcomes", [outcome(1, observed_at="2026-03-10")]).json()
    return first["batch_id"], second["batch_id"]


def test_list_shows_reasons_and_raw_content_newest_first(writer, rejected):
    body = writer.get(f"{BASE}/quarantine").json()
    assert body["count"] == 4
    kinds = [item["kind"] for item in body["results"]]
    assert kinds[0] == "outcomes" and kinds.count("predictions") == 3
    score = next(item for item in body["results"] if item["field"] == "score")
    assert score["prediction_id"] == "p-1" and score["index"] == 1 and score["code"] == "invalid"
    assert json.loads(score["raw"])["score"] == 7 and score["batch_id"] == rejected[0]
    assert score["resolved_at"] is None


def test_filters_and_paging(writer, rejected):
    page = writer.get(f"{BASE}/quarantine?kind=predictions&limit=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    rest = writer.get(page["next"]).json()
    ids = {item["id"] for item in page["results"] + rest["results"]}
    assert len(ids) == 3
    by_batch = writer.get(f"{BASE}/quarantine?batch_id={rejected[1]}").json()
    assert [item["kind"] for item in by_batch["results"]] == ["outcomes"]
    assert writer.get(f"{BASE}/quarantine?prediction_id=p-2").json()["count"] == 1
    assert writer.get(f"{BASE}/quarantine?kind=nope").status_code == 400
    assert writer.get(f"{BASE}/quarantine?batch_id=nope").status_code == 400
    assert writer.get("/api/v1/models/other/quarantine").status_code == 404


def test_download_as_csv_and_ndjson(writer, rejected):
    response = writer.get(f"{BASE}/quarantine.csv?kind=predictions")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 3 and {row["index"] for row in rows} == {"1", "2", "3"}
    assert json.loads(next(r for r in rows if r["index"] == "2")["raw"])["timestamp"] == "yesterday"
    lines = b"".join(writer.get(f"{BASE}/quarantine.ndjson").streaming_content).splitlines()
    items = [json.loads(line) for line in lines]
    assert len(items) == 4
    assert next(i for i in items if i["index"] == 3)["record"] == "x"
    assert (
        next(i for i in items if i["kind"] == "outcomes")["record"]["observed_at"] == "2026-03-10"
    )


def test_a_fixed_record_resubmitted_is_stored_and_resolves_the_quarantined_one(writer, rejected):
    bad = QuarantinedRecord.objects.get(field="score")
    url = f"{BASE}/quarantine/{bad.pk}/resubmit"
    still_bad = writer.post(url, prediction(1, score=3), format="json").json()
    assert still_bad["resolved"] is False and still_bad["rejected"] == 1
    fixed = writer.post(url, prediction(1, score=0.3), format="json")
    assert fixed.status_code == 200
    assert fixed.json()["accepted"] == 1 and fixed.json()["resolved"] is True
    assert Prediction.objects.get(prediction_id="p-1").score == 0.3
    bad.refresh_from_db()
    assert (
        bad.resolved_at is not None and str(bad.resolved_by.public_id) == fixed.json()["batch_id"]
    )
    again = writer.post(url, prediction(1, score=0.3), format="json")
    assert again.status_code == 409
    open_ids = {item["id"] for item in writer.get(f"{BASE}/quarantine").json()["results"]}
    assert bad.pk not in open_ids
    resolved = writer.get(f"{BASE}/quarantine?resolved=true").json()["results"]
    assert [item["id"] for item in resolved] == [bad.pk]


def test_resubmission_needs_the_write_scope_of_its_kind(client_with, writer, rejected):
    bad_outcome = QuarantinedRecord.objects.get(kind="outcomes")
    url = f"{BASE}/quarantine/{bad_outcome.pk}/resubmit"
    predictions_only = client_with("predictions:write", "read")
    assert predictions_only.post(url, outcome(1), format="json").status_code == 403
    outcomes_writer = client_with("outcomes:write")
    assert outcomes_writer.post(url, outcome(1), format="json").json()["resolved"] is True
    assert Outcome.objects.filter(prediction_id="p-1").exists()
    assert writer.post(url, "[1]", content_type="application/json").status_code == 400


def test_the_csv_disarms_cells_a_spreadsheet_would_run_and_the_dashboard_gets_the_same_file(
    model, writer, client
):
    # given records whose ids a spreadsheet would read as formulas
    post(writer, "predictions", [{"prediction_id": "=HYPERLINK(1)"}, {"prediction_id": "@x"}])
    # when the API's CSV is downloaded
    response = writer.get(f"{BASE}/quarantine.csv")
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    # then each such cell starts with a quote, and the raw JSON keeps what was sent
    assert sorted(row["prediction_id"] for row in rows) == ["'=HYPERLINK(1)", "'@x"]
    assert {json.loads(row["raw"])["prediction_id"] for row in rows} == {"=HYPERLINK(1)", "@x"}
    # and the dashboard's download is the same file
    client.force_login(get_user_model().objects.create_superuser("admin", password="pw-12345678"))
    page = client.get("/models/churn/quarantine.csv")
    assert b"".join(page.streaming_content).decode() == text
