"""Fixing a quarantined record on its page and sending it again, as the API's re-submit does."""

from __future__ import annotations

import json

import pytest

from monitoring.ingest.services import records_ingest
from monitoring.models import Prediction, QuarantinedRecord
from tests.conftest import prediction

pytestmark = pytest.mark.django_db
XSS = "<script>alert(1)</script>"


@pytest.fixture
def quarantined(model):
    records_ingest(
        model=model,
        kind="predictions",
        enqueue_jobs=False,
        records=[prediction(1, score=7, segment=XSS)],
    )
    return QuarantinedRecord.objects.get()


def url(record: QuarantinedRecord) -> str:
    return f"/models/churn/quarantine/{record.pk}/"


def fixed(record: QuarantinedRecord, **changes) -> str:
    body = {**json.loads(record.raw), **changes}
    return json.dumps(body, indent=2)


def test_the_list_links_each_record_to_its_page(quarantined, editor):
    html = editor.get("/models/churn/quarantine/").content.decode()
    assert f'href="{url(quarantined)}">Fix</a>' in html


def test_an_editor_fixes_and_resubmits_a_record(quarantined, editor):
    html = editor.get(url(quarantined)).content.decode()
    assert 'id="resubmit-form"' in html and "&quot;score&quot;: 7" in html
    response = editor.post(f"{url(quarantined)}resubmit", {"record": fixed(quarantined, score=0.7)})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Accepted: the corrected record is stored" in html
    stored = Prediction.objects.get(prediction_id="p-1")
    assert stored.score == 0.7 and stored.segment == XSS
    quarantined.refresh_from_db()
    assert quarantined.resolved_at is not None
    assert "resubmit-form" not in editor.get(url(quarantined)).content.decode()
    again = editor.post(f"{url(quarantined)}resubmit", {"record": fixed(quarantined, score=0.7)})
    assert again.status_code == 409 and "already re-submitted" in again.content.decode()


def test_a_record_still_wrong_shows_the_new_error(quarantined, editor):
    wrong = fixed(quarantined, score=2, timestamp="yesterday")
    response = editor.post(f"{url(quarantined)}resubmit", {"record": wrong})
    html = response.content.decode()
    assert "Rejected again" in html and "timestamp" in html and "score" in html
    quarantined.refresh_from_db()
    assert quarantined.resolved_at is None and not Prediction.objects.exists()
    again = QuarantinedRecord.objects.exclude(pk=quarantined.pk).get()
    assert f'href="{url(again)}"' in html
    assert 'name="record"' in html and "yesterday" in html  # the edit is kept to fix again


def test_the_same_service_as_the_api(quarantined, editor, client_with):
    """The page and the API's re-submit give the same answer for the same record."""
    records_ingest(
        model=quarantined.model,
        kind="predictions",
        enqueue_jobs=False,
        records=[prediction(2, score=9)],
    )
    other = QuarantinedRecord.objects.exclude(pk=quarantined.pk).get()
    api = client_with("predictions:write").post(
        f"/api/v1/models/churn/quarantine/{other.pk}/resubmit",
        json.loads(fixed(other, score=0.5)),
        format="json",
    )
    editor.post(f"{url(quarantined)}resubmit", {"record": fixed(quarantined, score=0.5)})
    assert api.json()["resolved"] is True
    assert QuarantinedRecord.objects.filter(resolved_at__isnull=False).count() == 2
    assert set(Prediction.objects.values_list("score", flat=True)) == {0.5}


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "this is not JSON"), ("[1, 2]", "must be a JSON object")],
)
def test_what_is_not_a_record_gets_a_message(quarantined, editor, text, message):
    response = editor.post(f"{url(quarantined)}resubmit", {"record": text})
    assert response.status_code == 400 and message in response.content.decode()
    quarantined.refresh_from_db()
    assert quarantined.resolved_at is None


def test_a_viewer_reads_the_record_but_cannot_resubmit(quarantined, viewer):
    html = viewer.get(url(quarantined)).content.decode()
    assert "resubmit-form" not in html and "Raw content" in html
    response = viewer.post(f"{url(quarantined)}resubmit", {"record": fixed(quarantined, score=0.7)})
    assert response.status_code == 403
    assert not Prediction.objects.exists()


def test_raw_content_is_escaped(quarantined, viewer, editor):
    for client in (viewer, editor):
        html = client.get(url(quarantined)).content.decode()
        assert XSS not in html and "&lt;script&gt;" in html


def test_downloads_stay(quarantined, viewer):
    response = viewer.get("/models/churn/quarantine.csv")
    assert response.status_code == 200
    assert "score" in b"".join(response.streaming_content).decode()
