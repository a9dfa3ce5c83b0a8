"""Schemathesis against the live schema: every operation, real objects behind the path
parameters, a key of every scope; no answer is a server error and every status is documented.

Derandomized (a fixed seed), no deadline, no network (outbound names resolve to a fixed public
address), no clock: the same examples every run, so it cannot turn CI red by chance. Each
example runs in a savepoint rolled back after it, so every one meets the same seeded data.
"""

from __future__ import annotations

import socket
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from accounts.models import Scope
from accounts.services import api_key_create
from config.wsgi import application
from monitoring.models import (
    Alert,
    AlertRule,
    AlertState,
    Direction,
    QuarantinedRecord,
    WebhookEndpoint,
)
from tests.conftest import NOW, outcome, prediction
from tests.factory.conftest import LINEAGE

EXAMPLES = 25
CHECKS = [not_a_server_error, status_code_conformance]
PUBLIC_ADDRESS = "93.184.216.34"


def resolve_public(host, port, *args, **kwargs):
    """A DNS that answers one public address for every name, without the network."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, port or 443))]


@contextmanager
def connection_kept():
    """The WSGI handler must not close the test's connection (and its transaction) between
    requests, as Django's own test client makes sure (and undoes after each of its requests)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def keys(db) -> list[str]:
    """Raw keys: every scope alone, all of them, all of them limited to the model, none."""
    every = [scope.value for scope in Scope]
    made = [api_key_create(name=scope, scopes=[scope]) for scope in every]
    made.append(api_key_create(name="all", scopes=every))
    made.append(api_key_create(name="limited", scopes=every, model_names=["churn"]))
    made.append(api_key_create(name="none", scopes=[]))
    return made


def seeded(client, key: str) -> dict[str, str]:
    """A model with versions, a rule, an alert, a webhook and quarantined rows; their ids."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}

    def post(path: str, body) -> None:
        response = client.post(f"/api/v1/{path}", body, content_type="application/json", **auth)
        assert response.status_code in (200, 201), (path, response.content)

    post("models", {"name": "churn", "task": "binary_classification", "positive_class": 1})
    for version in ("1.0.0", "1.1.0"):
        post("models/churn/versions", {"version": version, "lineage": LINEAGE})
    good = [prediction(i, at=NOW - timedelta(hours=i)) for i in range(40)]
    bad = [prediction(100, score="high"), {"prediction_id": "p-101"}]
    post("models/churn/predictions", {"records": good + bad})
    post("models/churn/outcomes", {"records": [outcome(i) for i in range(20)]})
    post("models/churn/alert-rules", {"metric": "accuracy", "kind": "static", "lower": 0.9})
    rule = AlertRule.objects.filter(model__name="churn").latest("pk")
    alert = Alert.objects.create(
        rule=rule,
        model=rule.model,
        state=AlertState.FIRING,
        direction=Direction.TOO_LOW,
        value=0.5,
        n=20,
        window_start=datetime(2026, 3, 9, tzinfo=UTC),
        window_end=datetime(2026, 3, 10, tzinfo=UTC),
        started_at=datetime(2026, 3, 10, tzinfo=UTC),
    )
    webhook = WebhookEndpoint.objects.create(model=rule.model, url="https://hooks.example.com/a")
    quarantined = QuarantinedRecord.objects.filter(model=rule.model).latest("pk")
    return {
        "alerts": str(alert.pk),
        "alert-rules": str(rule.pk),
        "webhooks": str(webhook.pk),
        "quarantine": str(quarantined.pk),
    }


def path_parameters(path: str, ids: dict[str, str]) -> dict[str, str]:
    """The seeded objects for the operation's path parameters."""
    fixed = {"model": "churn", "version": "1.0.0"}
    if "{id}" in path:
        owner = path.split("/{id}")[0].rsplit("/", 1)[-1]
        fixed["id"] = ids[owner]
    return {name: value for name, value in fixed.items() if "{" + name + "}" in path}


def operation_failures(
    operation, fixed: dict[str, str], keys: list[str], statuses: dict[str, list[int]]
) -> list[str]:
    """Run the operation's examples; the failed checks, as text (statuses: what each answered)."""
    failures: list[str] = []
    strategy = st.sampled_from(keys).flatmap(
        lambda key: operation.as_strategy(
            path_parameters=fixed, headers={"Authorization": f"Bearer {key}"}
        )
    )

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=strategy)
    def run(case) -> None:
        cache.clear()  # the per-key rate limit is not what is tested here
        with transaction.atomic():
            response = case.call()
            transaction.set_rollback(True)
        statuses.setdefault(operation.label, []).append(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            failures.extend(
                f"{operation.label} answered {response.status_code}: {failure.title}"
                f" ({response.text[:300]})"
                for failure in group.exceptions
            )

    run()
    return failures


@pytest.mark.django_db
def test_no_operation_answers_a_server_error_or_an_undocumented_status(
    client, keys, monkeypatch, settings
):
    settings.CANARY_INGEST_RATE = None
    monkeypatch.setattr(socket, "getaddrinfo", resolve_public)
    ids = seeded(client, keys[len(Scope)])
    failures: list[str] = []
    labels: list[str] = []
    statuses: dict[str, list[int]] = {}
    with connection_kept():
        schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
        for result in schema.get_all_operations():
            operation = result.ok()
            labels.append(operation.label)
            fixed = path_parameters(operation.path, ids)
            failures.extend(operation_failures(operation, fixed, keys, statuses))
    assert len(labels) >= 40
    missed = [
        label
        for label, codes in statuses.items()
        if ("{id}" in label or "{version}" in label) and set(codes) <= {403, 404}
    ]
    assert not missed, f"the seeded objects were never reached: {missed}"
    assert not failures, "\n".join(sorted(set(failures)))


def test_a_gate_whose_metric_name_holds_a_nul_is_a_400_not_a_server_error(model, writer):
    body = {"canary": {"roc\x00auc": 0.7}, "production": {"accuracy": 0.8}}
    response = writer.put("/api/v1/models/churn/gates", body, format="json")
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["canary"]
    assert writer.get("/api/v1/models/churn/gates").json()["canary"] == {}


def documented(schema: dict, method: str, path: str) -> set[str]:
    return set(schema["paths"][f"/api/v1/{path}"][method]["responses"])


def test_the_schema_documents_the_conflicts_and_the_unknown_model_filter(model, writer):
    schema = writer.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    rollback = writer.post("/api/v1/models/churn/rollouts/rollback", {}, format="json")
    assert rollback.status_code == 409
    assert "409" in documented(schema, "post", "models/{model}/rollouts/rollback")
    assert writer.get("/api/v1/alerts", {"model": "nope"}).status_code == 404
    assert "404" in documented(schema, "get", "alerts")
    for path in ("models", "models/{model}/versions", "models/{model}/webhooks"):
        assert "409" in documented(schema, "post", path)
    assert "411" in documented(schema, "post", "models/{model}/predictions")
