from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from accounts.services import api_key_create
from factory.services import model_create

IN_CI = os.environ.get("CI") == "true"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def need_service(what: str, available: bool) -> None:
    """Skip on a laptop without the service; fail in CI, where it must be there."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} is not available here")


@pytest.fixture
def outbound_private(settings):
    """Outbound calls may reach 127.0.0.1 over plain http: the tests' local receivers."""
    settings.CANARY_OUTBOUND_ALLOW_PRIVATE = True


@pytest.fixture
def model(db):
    return model_create(
        name="churn",
        task="binary_classification",
        positive_class=1,
        on_call=["oncall@example.com"],
    )


@pytest.fixture
def client_with():
    """An API client whose Bearer key has the given scopes."""

    def make(*scopes: str, models: tuple[str, ...] = ()) -> APIClient:
        client = APIClient()
        key = api_key_create(name="test", scopes=list(scopes), model_names=list(models))
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        return client

    return make


@pytest.fixture
def writer(db, client_with):
    return client_with("predictions:write", "outcomes:write", "read", "factory:write")


def prediction(i: int, *, at: datetime = NOW, **fields) -> dict:
    record = {
        "prediction_id": f"p-{i}",
        "timestamp": at.isoformat(),
        "model_version": "1.0.0",
        "prediction": 1,
        "score": 0.8,
        "features": {"age": 40, "plan": "basic"},
    }
    record.update(fields)
    return record


def outcome(i: int, *, at: datetime = NOW + timedelta(days=2), **fields) -> dict:
    record = {"prediction_id": f"p-{i}", "observed_at": at.isoformat(), "outcome": 1}
    record.update(fields)
    return record


class Inbox:
    """Messages a real local SMTP server received."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.rcpt_tos, message))
        return "250 OK"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    """aiosmtpd on a free port; Django's SMTP backend sends to it."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    inbox.controller = controller
    yield inbox
    controller.stop()


def migrate(targets) -> object:
    """Migrate to the targets (a list of (app, migration)); the project's models there."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def latest_migrations() -> list:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    return MigrationExecutor(connection).loader.graph.leaf_nodes()
