"""A real Celery worker evaluates alert rules after ingestion and e-mails a real SMTP server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.metrics.registry import metric_label
from monitoring.models import Alert, AlertRule
from tests.conftest import outcome, prediction
from tests.integration.test_worker import wait_for, worker  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def smtp_for_worker(smtp_server, monkeypatch):
    """The worker process reads its SMTP server from the environment, as in production."""
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("EMAIL_PORT", str(smtp_server.controller.port))
    return smtp_server


def test_the_worker_fires_a_rule_and_sends_one_email(model, writer, smtp_for_worker, worker):  # noqa: F811
    # given: a static rule, and yesterday's predictions, 2 of 20 right, posted through the API
    AlertRule.objects.create(
        model=model, metric="accuracy", kind="static", lower=0.8, min_count=10, granularity="day"
    )
    yesterday = (timezone.now() - timedelta(days=1)).replace(hour=6, minute=0)
    writer.post(
        "/api/v1/models/churn/predictions",
        [prediction(i, at=yesterday) for i in range(20)],
        format="json",
    )
    writer.post(
        "/api/v1/models/churn/outcomes",
        [outcome(i, at=yesterday + timedelta(hours=1), outcome=int(i < 2)) for i in range(20)],
        format="json",
    )
    # when the worker has run the jobs the requests enqueued, then
    assert wait_for(lambda: len(smtp_for_worker.messages) == 1, timeout_s=90)
    alert = Alert.objects.get()
    assert (alert.state, alert.direction, alert.value) == ("firing", "too_low", 0.1)
    assert f"{metric_label('accuracy')} too low" in smtp_for_worker.messages[0][1]["Subject"]
