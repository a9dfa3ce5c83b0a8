"""A real Celery worker process, consuming from Redis, joins what the API stored in PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from monitoring.models import HourlyAggregate, Label
from tests.conftest import need_service, outcome, prediction

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def redis_answers(url: str) -> bool:
    import redis

    try:
        return redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError:
        return False


@pytest.fixture
def worker():
    broker = settings.CELERY_BROKER_URL
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    need_service("Redis (CELERY_BROKER_URL)", broker.startswith("redis") and redis_answers(broker))
    from config.celery import app

    app.control.purge()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": broker,
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--concurrency=2",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def wait_for(condition, timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


def test_the_worker_joins_and_aggregates_what_the_api_stored(model, writer, worker):
    # given: predictions, and outcomes for half of them, posted through the API
    response = writer.post(
        "/api/v1/models/churn/predictions", [prediction(i) for i in range(40)], format="json"
    )
    assert response.json()["accepted"] == 40
    labels = [outcome(i, outcome=(i // 2) % 2) for i in range(0, 40, 2)]  # 10 right
    assert writer.post("/api/v1/models/churn/outcomes", labels, format="json").status_code == 200
    # when the worker has consumed the jobs the requests enqueued after commit
    joined = wait_for(lambda: Label.objects.count() == 20)
    # then
    if not joined:
        worker.terminate()
        pytest.fail(
            "the worker did not join in time:\n" + worker.communicate(timeout=20)[0][-3000:]
        )
    assert wait_for(lambda: sum(HourlyAggregate.objects.values_list("labelled", flat=True)) == 20)
    assert Label.objects.filter(correct=True).count() == 10
