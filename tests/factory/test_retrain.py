"""A rule that requests retraining: one request per firing, by webhook and signal."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from celery import shared_task

from factory.models import RetrainRequest
from factory.retrain import retrain_requested
from factory.retrain_delivery import retrain_requests_deliver
from factory.services import version_register
from monitoring.jobs import jobs_run
from tests.factory.conftest import LINEAGE
from tests.monitoring.alerts.test_static import day_of_traffic, end_of_day, static_rule


class Hook(BaseHTTPRequestHandler):
    received: list = []
    answers: list = []  # status codes to give, in order; then 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).answers.pop(0) if type(self).answers else 200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(outbound_private):
    Hook.received, Hook.answers = [], []
    server = HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Hook, f"http://127.0.0.1:{server.server_port}/retrain"
    server.shutdown()


@pytest.fixture
def signalled():
    payloads = []

    def listen(sender, request, payload, **kwargs):
        payloads.append(payload)

    retrain_requested.connect(listen)
    yield payloads
    retrain_requested.disconnect(listen)


def test_a_firing_rule_requests_retraining_once(
    model, webhook, signalled, django_capture_on_commit_callbacks
):
    hook, url = webhook
    model.retrain_webhook_url = url
    model.save()
    version_register(model=model, version="1.0.0", lineage=LINEAGE)
    rule = static_rule(model, requests_retrain=True)
    static_rule(model, lower=0.9, min_count=10**6)  # never judged: asks for nothing
    day_of_traffic(model, 0)
    with django_capture_on_commit_callbacks(execute=True):
        jobs_run(model_id=model.pk, now=end_of_day(0))
    assert not RetrainRequest.objects.exists()
    # when the rule fires, and is evaluated again while still firing
    day_of_traffic(model, 1, correct=30)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            jobs_run(model_id=model.pk, now=end_of_day(1))
    retrain_requests_deliver()
    # then one request, with the lineage and the failed window, delivered by webhook and signal
    request = RetrainRequest.objects.get()
    assert request.rule_id == rule.pk and request.metric == "accuracy"
    assert request.value == pytest.approx(0.6)
    assert request.status == "delivered"
    assert len(hook.received) == 1 and len(signalled) == 1
    payload = hook.received[0]
    assert payload == signalled[0]
    assert payload["lineage"] == LINEAGE and payload["version"] == "1.0.0"
    assert payload["window"]["start"].startswith(end_of_day(0).date().isoformat())
    assert payload["reason"]["metric"] == "accuracy"


def test_a_webhook_failing_transiently_is_retried_and_a_4xx_is_not(model, webhook):
    hook, url = webhook
    model.retrain_webhook_url = url
    model.save()
    static_rule(model, requests_retrain=True)
    day_of_traffic(model, 1, correct=30)
    hook.answers = [503]
    jobs_run(model_id=model.pk, now=end_of_day(1))
    request = RetrainRequest.objects.get()
    retrain_requests_deliver()
    request.refresh_from_db()
    assert (request.status, request.attempts) == ("pending", 1)
    assert request.error == "HTTP 503 from the webhook"
    RetrainRequest.objects.update(claimed_until=None)  # the backoff has passed
    hook.answers = [400]
    retrain_requests_deliver()
    request.refresh_from_db()
    assert (request.status, request.attempts) == ("failed", 2)
    RetrainRequest.objects.update(claimed_until=None)
    assert retrain_requests_deliver() == 0
    assert len(hook.received) == 2


def test_retrain_requests_are_listed_with_their_status(model, writer):
    static_rule(model, requests_retrain=True)
    day_of_traffic(model, 1, correct=30)
    jobs_run(model_id=model.pk, now=end_of_day(1))
    listed = writer.get("/api/v1/models/churn/retrain-requests").json()
    assert [(r["metric"], r["status"]) for r in listed] == [("accuracy", "pending")]


HANDED_TO_TASK: list = []


@shared_task(name="tests.retrain_pipeline")
def retrain_pipeline(payload: dict) -> None:
    HANDED_TO_TASK.append(payload)


def test_the_configured_celery_task_gets_the_payload(
    model, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from config.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)  # run here, as in the embedded mode
    settings.CANARY_RETRAIN_TASK = "tests.retrain_pipeline"
    HANDED_TO_TASK.clear()
    static_rule(model, requests_retrain=True)
    day_of_traffic(model, 1, correct=30)
    with django_capture_on_commit_callbacks(execute=True):
        jobs_run(model_id=model.pk, now=end_of_day(1))
    (payload,) = HANDED_TO_TASK
    assert payload["reason"]["metric"] == "accuracy" and payload["model"] == "churn"
    request = RetrainRequest.objects.get()
    assert request.status == "delivered" and request.hooks_error == ""


def test_a_failing_listener_is_recorded_and_does_not_stop_delivery(
    model, django_capture_on_commit_callbacks
):
    def broken(sender, **kwargs):
        raise RuntimeError("pipeline down")

    retrain_requested.connect(broken)
    try:
        static_rule(model, requests_retrain=True)
        day_of_traffic(model, 1, correct=30)
        with django_capture_on_commit_callbacks(execute=True):
            jobs_run(model_id=model.pk, now=end_of_day(1))
    finally:
        retrain_requested.disconnect(broken)
    retrain_requests_deliver()
    request = RetrainRequest.objects.get()
    assert "pipeline down" in request.hooks_error and request.status == "delivered"


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_of_one_firing_record_one_request():
    from django.db import connection, connections

    from factory.services import model_create
    from monitoring.alerts.retrain import retrain_on_firing
    from monitoring.models import Alert
    from tests.conftest import need_service

    need_service("PostgreSQL", connection.vendor == "postgresql")
    model = model_create(name="churn", task="binary_classification", positive_class=1)
    static_rule(model, requests_retrain=True)
    day_of_traffic(model, 1, correct=30)
    jobs_run(model_id=model.pk, now=end_of_day(1))
    alert = Alert.objects.get()
    RetrainRequest.objects.all().delete()  # as if no evaluator had got there yet
    barrier = threading.Barrier(6)
    made = []

    def evaluate():
        barrier.wait()
        made.append(retrain_on_firing(Alert.objects.select_related("rule", "model").get()))
        connections.close_all()

    threads = [threading.Thread(target=evaluate) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sum(m is not None for m in made) == 1
    assert RetrainRequest.objects.filter(alert_id=alert.pk).count() == 1


def test_the_manifest_is_that_of_the_version_the_rule_watches(model):
    version_register(model=model, version="1.0.0", lineage=LINEAGE)
    other = {**LINEAGE, "code_version": "git:other"}
    version_register(model=model, version="2.0.0", lineage=other)
    static_rule(model, requests_retrain=True, version="1.0.0")
    day_of_traffic(model, 1, correct=30)
    jobs_run(model_id=model.pk, now=end_of_day(1))
    assert RetrainRequest.objects.get().manifest == {"version": "1.0.0", "lineage": LINEAGE}
