"""Webhooks against a real local HTTP receiver, default rules, and the alert API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
from monitoring.models import Alert, AlertEvaluation, AlertRule, Notification, WebhookEndpoint
from tests.monitoring.alerts.test_kinds import end_of_day, rule, traffic

pytestmark = pytest.mark.django_db


class Receiver:
    """http.server in a thread; answers `status` and keeps every JSON body it got."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                if receiver.status == 200:
                    receiver.bodies.append(body)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(outbound_private):
    receiver = Receiver()
    yield receiver
    receiver.stop()


def test_webhook_gets_slack_compatible_json(model, smtp_server, receiver, writer):
    # given: a webhook registered through the API
    created = writer.post("/api/v1/models/churn/webhooks", {"url": receiver.url}, format="json")
    assert created.status_code == 201
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    # when
    jobs_run(model_id=model.pk, now=end_of_day(0))
    # then: one POST, with a Slack `text` and the alert as data; and the e-mail too
    (body,) = receiver.bodies
    assert f"{metric_label('accuracy')} of churn is too low" in body["text"]
    assert body["model"] == "churn" and body["alerts"][0]["direction"] == "too_low"
    assert body["alerts"][0]["value"] == 0.2 and body["alerts"][0]["n"] == 50
    assert len(smtp_server.messages) == 1


def test_webhook_down_then_up_is_delivered(model, smtp_server, receiver):
    WebhookEndpoint.objects.create(model=model, url=receiver.url)
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    receiver.status = 503
    jobs_run(model_id=model.pk, now=end_of_day(0))
    hook = Notification.objects.get(channel="webhook")
    assert hook.sent_at is None and "HTTP 503" in hook.error and not receiver.bodies
    # when the peer is back and the backoff has passed
    receiver.status = 200
    Notification.objects.update(claimed_until=None)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    hook.refresh_from_db()
    assert hook.sent_at is not None and hook.attempts == 2 and len(receiver.bodies) == 1


def test_webhook_404_is_a_permanent_failure(model, smtp_server, receiver):
    WebhookEndpoint.objects.create(model=model, url=receiver.url)
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    receiver.status = 404
    jobs_run(model_id=model.pk, now=end_of_day(0))
    hook = Notification.objects.get(channel="webhook")
    assert hook.attempts == 5 and "given up" in hook.error


def test_a_new_model_gets_default_rules(writer):
    answer = writer.post(
        "/api/v1/models", {"name": "fraud", "task": "binary_classification"}, format="json"
    )
    assert answer.status_code == 201
    rules = writer.get("/api/v1/models/fraud/alert-rules").json()
    found = {(r["metric"], r["kind"], r["sides"]) for r in rules}
    assert found == {
        ("roc_auc", "band", "both"),
        ("accuracy", "band", "both"),
        ("positive_rate", "band", "both"),
        ("estimated:roc_auc", "band", "both"),
        ("predictions", "no_data", "both"),
    }
    assert all(r["is_default"] for r in rules)
    body = {"name": "price", "task": "regression"}
    regression = writer.post("/api/v1/models", body, format="json")
    assert regression.status_code == 201
    metrics = {r["metric"] for r in writer.get("/api/v1/models/price/alert-rules").json()}
    assert metrics == {"mae", "mean_prediction", "estimated:mae", "predictions"}


def test_business_values_get_a_default_band_when_they_first_appear(model, smtp_server):
    from monitoring.ingest.services import records_ingest
    from tests.conftest import outcome, prediction

    records_ingest(model=model, kind="predictions", records=[prediction(1)], enqueue_jobs=False)
    records_ingest(
        model=model,
        kind="outcomes",
        enqueue_jobs=False,
        records=[outcome(1, values={"revenue": 12.5})],
    )
    jobs_run(model_id=model.pk)
    (added,) = AlertRule.objects.filter(metric="value:revenue")
    assert added.kind == "band" and added.sides == "both" and added.is_default
    # deleting it is respected: it is not created again
    added.delete()
    jobs_run(model_id=model.pk)
    assert not AlertRule.objects.filter(metric="value:revenue").exists()


def test_default_rules_on_unknown_metrics_record_errors_not_alerts(writer, smtp_server):
    writer.post("/api/v1/models", {"name": "fraud", "task": "binary_classification"}, format="json")
    from factory.models import MLModel

    model = MLModel.objects.get(name="fraud")
    jobs_run(model_id=model.pk)
    verdicts = dict(AlertEvaluation.objects.values_list("rule__metric", "verdict"))
    assert verdicts["accuracy"] in ("no_data", "too_few")
    assert not Alert.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metric": "accuracy", "kind": "band"}, "k"),
        ({"metric": "accuracy", "kind": "relative"}, "percent"),
        ({"metric": "accuracy", "kind": "no_data"}, "metric"),
        ({"metric": "outcomes", "kind": "static", "lower": 1}, "metric"),
        ({"metric": "accuracy", "kind": "band", "k": 3, "sides": "up"}, "sides"),
        (
            {"metric": "accuracy", "kind": "band", "k": 3, "baseline_version": "1"},
            "baseline_version",
        ),
    ],
)
def test_bad_rules_are_refused_with_the_field(model, writer, body, field):
    response = writer.post("/api/v1/models/churn/alert-rules", body, format="json")
    assert response.status_code == 400
    assert field in [error["field"] for error in response.json()["errors"]]


def test_band_and_relative_rules_from_the_api_with_a_noise_warning(model, writer, smtp_server):
    url = "/api/v1/models/churn/alert-rules"
    for day in range(4):
        traffic(model, day, n=200, correct=180)
    jobs_run(model_id=model.pk, now=end_of_day(3))
    narrow = writer.post(url, {"metric": "accuracy", "kind": "band", "k": 1}, format="json")
    wide = writer.post(url, {"metric": "accuracy", "kind": "band", "k": 4}, format="json")
    relative = writer.post(
        url, {"metric": "predictions", "kind": "relative", "percent": 10}, format="json"
    )
    assert narrow.status_code == wide.status_code == relative.status_code == 201
    assert "will fire on noise" in narrow.json()["warnings"][0]
    assert wide.json()["warnings"] == []
    listed = {r["id"]: r for r in writer.get(url).json()}
    assert listed[narrow.json()["id"]]["warnings"] == narrow.json()["warnings"]


def test_evaluations_are_listed_per_rule(model, writer):
    static = rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    rows = writer.get(f"/api/v1/models/churn/alert-rules/{static.pk}/evaluations").json()
    assert rows[0]["verdict"] == "too_low" and rows[0]["state"] == "firing"
    assert rows[0]["n"] == 50 and rows[0]["lower"] == 0.8


def test_the_openapi_schema_describes_the_alert_endpoints(writer):
    schema = writer.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    for path in (
        "/api/v1/alerts/{id}/acknowledge",
        "/api/v1/alerts/{id}/silence",
        "/api/v1/models/{model}/webhooks",
        "/api/v1/models/{model}/alert-rules/{id}/evaluations",
    ):
        assert path in schema["paths"], path
