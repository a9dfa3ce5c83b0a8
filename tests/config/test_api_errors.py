"""The API's edges: chunked bodies, unrouted paths, unhandled errors, the scheme's case, the
silence's DELETE and the error answers the schema lists."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from accounts.services import api_key_create
from monitoring.api import models as model_views
from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertRule
from tests.conftest import prediction
from tests.monitoring.alerts.test_kinds import end_of_day, traffic

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def chunked(body: bytes, *, terminated: bool) -> dict:
    """The WSGI environ a server gives a chunked body: no CONTENT_LENGTH, the de-chunked stream."""
    return {
        "CONTENT_LENGTH": "",
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": terminated,
    }


def test_a_chunked_body_is_read_to_its_end(model, writer):
    # given: two records sent chunked, as gunicorn hands them on
    body = "\n".join(json.dumps(prediction(i)) for i in range(2)).encode()
    # when
    response = writer.generic(
        "POST",
        "/api/v1/models/churn/predictions",
        content_type="application/x-ndjson",
        **chunked(body, terminated=True),
    )
    # then
    assert response.status_code == 200, response.content
    assert (response.json()["received"], response.json()["accepted"]) == (2, 2)


def test_a_chunked_body_a_server_cannot_end_is_a_411(model, writer):
    body = json.dumps([prediction(1)]).encode()
    response = writer.generic(
        "POST",
        "/api/v1/models/churn/predictions",
        content_type="application/json",
        **chunked(body, terminated=False),
    )
    assert response.status_code == 411
    assert response["Content-Type"] == PROBLEM


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/models/churn/nothing"])
def test_an_unrouted_api_path_is_a_404_problem(model, writer, path):
    response = writer.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    assert response.json()["status"] == 404


def test_an_unrouted_page_is_still_an_html_404(model, client):
    response = client.get("/nothing-here/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_an_unhandled_error_in_the_api_is_a_500_problem(model, monkeypatch):
    # given: a fault deep inside a view
    def broken(models):
        raise RuntimeError("a bug")

    monkeypatch.setattr(model_views, "models_with_health", broken)
    client = APIClient(raise_request_exception=False)
    key = api_key_create(name="reader", scopes=["read"], model_names=[])
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    # when
    response = client.get("/api/v1/models")
    # then
    assert response.status_code == 500
    assert response["Content-Type"] == PROBLEM
    assert "a bug" not in response.content.decode()


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_scheme_is_case_insensitive(model, scheme):
    key = api_key_create(name="reader", scopes=["read"], model_names=[])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    assert client.get("/api/v1/models").status_code == 200


def test_lifting_a_silence_answers_204_without_a_body(model, writer):
    # given: a firing alert, silenced
    AlertRule.objects.create(model=model, metric="accuracy", kind="static", lower=0.8, min_count=20)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    alert = Alert.objects.get()
    until = (end_of_day(0) + timedelta(days=3650)).isoformat()
    url = f"/api/v1/alerts/{alert.pk}/silence"
    assert writer.post(url, {"until": until, "reason": "x"}, format="json").status_code == 200
    # when
    response = writer.delete(url)
    # then
    assert response.status_code == 204 and response.content == b""
    assert AlertRule.objects.get().silenced_until is None


def test_the_schema_lists_the_error_answers(writer):
    schema = writer.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    ingest = schema["paths"]["/api/v1/models/{model}/predictions"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "413", "415", "429"} <= set(ingest)
    assert PROBLEM in ingest["415"]["content"]
    listing = schema["paths"]["/api/v1/models"]["get"]["responses"]
    assert {"200", "400", "401", "403"} <= set(listing) and "404" not in listing
    silence = schema["paths"]["/api/v1/alerts/{id}/silence"]["delete"]["responses"]
    assert "204" in silence and "200" not in silence
    assert "Problem" in schema["components"]["schemas"]


def test_pages_and_the_api_docs_carry_a_csp(db, client):
    login = client.get("/login/")
    assert "script-src 'self'" in login["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in login["Content-Security-Policy"]
    docs = client.get("/api/docs/")
    # Redoc from this server: its scripts are the server's own, nothing from a CDN
    assert "script-src 'self';" in docs["Content-Security-Policy"] + ";"
    assert "cdn" not in docs.content.decode() and "googleapis" not in docs.content.decode()
