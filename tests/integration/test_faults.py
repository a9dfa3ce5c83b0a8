"""Fault tests against real processes: concurrent duplicates, killed web and Celery workers,
a database that goes away. What was acknowledged is stored exactly once; joins come out right."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pandas as pd
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from accounts.services import api_key_create
from factory.services import versions_resolve
from monitoring.ingest.partitions import partitions_ensure
from monitoring.models import JoinState, Label, Prediction
from tests.conftest import NOW, need_service, prediction
from tests.integration.services import (
    ROOT,
    PrivatePostgres,
    WebServer,
    celery_worker,
    database_url,
    post,
    post_until_ok,
    stop,
    wait_for,
)
from tests.integration.test_worker import redis_answers

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
PREDICTIONS = "/api/v1/models/churn/predictions"
# The web servers enqueue jobs into an in-process queue: no worker is under test there.
NO_WORKER = {"CELERY_BROKER_URL": "memory://"}


@pytest.fixture
def postgres():
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")


@pytest.fixture
def redis_broker(postgres):
    broker = settings.CELERY_BROKER_URL
    need_service("Redis (CELERY_BROKER_URL)", broker.startswith("redis") and redis_answers(broker))
    from config.celery import app

    app.control.purge()
    yield broker
    app.control.purge()


@pytest.fixture
def key(db):
    return api_key_create(name="faults", scopes=["predictions:write", "outcomes:write", "read"])


@pytest.fixture
def web(postgres):
    server = WebServer(database_url(), workers=2, env=NO_WORKER)
    yield server
    server.stop()


def batch_body(ids: range, prefix: str = "p") -> bytes:
    return json.dumps(
        [prediction(i, prediction_id=f"{prefix}-{i}", features={"x": i % 7}) for i in ids]
    ).encode()


def test_the_same_batch_posted_twice_at_once_is_stored_once(model, key, web):
    # given: two clients about to post the same 10,000 predictions
    body = batch_body(range(10_000))
    start = threading.Barrier(2)
    answers = []

    def client():
        start.wait()
        answers.append(post(web.port, PREDICTIONS, body, key))

    # when
    threads = [threading.Thread(target=client) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then
    assert [status for status, _ in answers] == [200, 200], answers
    receipts = [answer for _, answer in answers]
    assert sum(r["accepted"] for r in receipts) == 10_000
    assert sum(r["duplicates"] for r in receipts) == 10_000
    assert all(r["received"] == 10_000 and r["rejected"] == 0 for r in receipts)
    assert Prediction.objects.count() == 10_000


def active_query(*fragments: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND state = 'active' AND query ILIKE ANY(%s)",
            [[f"%{fragment}%" for fragment in fragments]],
        )
        return cursor.fetchone()[0] > 0


def waiting_to_write(table: str) -> bool:
    """Some session waits for a lock to write into `table` (found by the lock, not by the
    statement's text, which pg_stat_activity cuts at track_activity_query_size)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = %s AND NOT l.granted AND l.mode = 'RowExclusiveLock'",
            [table],
        )
        return cursor.fetchone()[0] > 0


def test_a_web_worker_killed_mid_request_and_the_client_retrying_stores_each_row_once(
    model, key, postgres
):
    server = WebServer(database_url(), workers=1, env=NO_WORKER)
    try:
        body = batch_body(range(30_000))
        answer = {}
        client = threading.Thread(
            target=lambda: answer.update(post_until_ok(server.port, PREDICTIONS, body, key))
        )
        (first_worker,) = server.workers()
        # Hold the predictions table so that the request is caught in the middle.
        with psycopg.connect(database_url().replace("postgres://", "postgresql://")) as lock:
            lock.execute("LOCK TABLE monitoring_prediction IN SHARE MODE")
            client.start()
            assert wait_for(
                lambda: active_query(
                    "INSERT INTO monitoring_prediction", "COPY monitoring_prediction"
                ),
                60,
            )
            os.kill(first_worker, signal.SIGKILL)
        client.join(300)
        assert not client.is_alive() and first_worker not in server.workers()
    finally:
        server.stop()
    assert answer["received"] == 30_000
    assert answer["accepted"] + answer["duplicates"] == 30_000
    assert Prediction.objects.count() == 30_000


def test_postgres_stopped_while_four_clients_post_with_retries(tmp_path):
    # given: a private PostgreSQL that this test may stop, and a web server on it
    database = PrivatePostgres()
    try:
        database.migrate()
        env = {**os.environ, "DATABASE_URL": database.url}
        manage = [sys.executable, "manage.py"]
        subprocess.run(
            [
                *manage,
                "shell",
                "-c",
                "from factory.services import model_create; "
                "model_create(name='churn', task='binary_classification')",
            ],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        key = subprocess.run(
            [*manage, "create_api_key", "faults", "--scope", "predictions:write"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        server = WebServer(database.url, workers=2, env=NO_WORKER)
        acknowledged: list[tuple[range, dict]] = []
        failures: list = []
        first_acks = threading.Event()

        def client(number: int):
            for batch in range(12):
                ids = range((number * 100 + batch) * 500, (number * 100 + batch + 1) * 500)
                receipt = post_until_ok(
                    server.port, PREDICTIONS, batch_body(ids), key, failures=failures
                )
                acknowledged.append((ids, receipt))
                if len(acknowledged) >= 4:
                    first_acks.set()

        clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in clients:
            thread.start()
        # when: the database dies mid-traffic and comes back a few seconds later
        assert first_acks.wait(120)
        database.stop_immediately()
        time.sleep(3)
        database.start()
        for thread in clients:
            thread.join(300)
        server.stop()
        # then: every acknowledged row is stored, and none twice
        with psycopg.connect(database.url.replace("postgres://", "postgresql://")) as conn:
            stored = [
                row[0] for row in conn.execute("SELECT prediction_id FROM monitoring_prediction")
            ]
        assert len(acknowledged) == 48
        assert failures, "no request met the outage"
        expected = {f"p-{i}" for ids, _ in acknowledged for i in ids}
        assert len(stored) == len(set(stored)) == len(expected)
        assert set(stored) == expected
        assert sum(receipt["accepted"] for _, receipt in acknowledged) == len(stored)
    finally:
        database.destroy()


def raw_rows_insert(model_id: int, version_id: int, n: int) -> None:
    """n predictions; outcomes for 80% of them plus 20% without one, some corrected, in SQL."""
    partitions_ensure([NOW - timedelta(minutes=4000), NOW])
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO monitoring_prediction (model_id, version_id, prediction_id, timestamp,
                segment, prediction, content_md5)
            SELECT %s, %s, 'p-' || i, %s - make_interval(mins => i %% 4000), '', (i %% 2)::text, ''
            FROM generate_series(1, %s) AS i
            """,
            [model_id, version_id, NOW, n],
        )
        cursor.execute(
            """
            INSERT INTO monitoring_outcome (model_id, prediction_id, observed_at, outcome,
                content_md5)
            SELECT %s, CASE WHEN i %% 5 = 0 THEN 'orphan-' || i ELSE 'p-' || i END,
                %s + make_interval(hours => v), ((i * 7 + v) %% 2)::text, ''
            FROM generate_series(1, %s) AS i, generate_series(1, 2) AS v
            WHERE v = 1 OR i %% 10 = 3
            ORDER BY md5(i::text || v::text)
            """,
            [model_id, NOW + timedelta(days=1), n],
        )


def frame(sql: str, params: list, columns: list[str]) -> pd.DataFrame:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return pd.DataFrame(cursor.fetchall(), columns=columns)


def expected_labels(model_id: int) -> pd.DataFrame:
    """The join computed independently, with pandas, from the raw rows."""
    predictions = frame(
        "SELECT prediction_id, prediction FROM monitoring_prediction WHERE model_id = %s",
        [model_id],
        ["prediction_id", "prediction"],
    )
    outcomes = frame(
        "SELECT id, prediction_id, outcome, observed_at FROM monitoring_outcome "
        "WHERE model_id = %s",
        [model_id],
        ["id", "prediction_id", "outcome", "observed_at"],
    )
    latest = outcomes.sort_values(["observed_at", "id"]).groupby("prediction_id").tail(1)
    joined = predictions.merge(latest, on="prediction_id")
    joined["correct"] = joined["prediction"] == joined["outcome"]
    return joined[["prediction_id", "outcome", "correct"]].sort_values("prediction_id")


def joined_labels(model_id: int) -> pd.DataFrame:
    labels = pd.DataFrame(
        Label.objects.filter(model_id=model_id).values_list(
            "prediction__prediction_id", "outcome", "correct"
        ),
        columns=["prediction_id", "outcome", "correct"],
    )
    return labels.sort_values("prediction_id")


def test_a_celery_worker_killed_mid_join_then_restarted_joins_exactly_right(
    model, redis_broker, tmp_path
):
    # given: 100,000 predictions and their outcomes, not yet joined
    version_ids = versions_resolve(model=model, names={"1.0.0"})
    raw_rows_insert(model.pk, version_ids["1.0.0"], 100_000)
    from monitoring.tasks import jobs_run_model

    worker = celery_worker(database_url(), redis_broker)
    url = database_url().replace("postgres://", "postgresql://")
    try:
        # when: the worker is killed while its join is writing labels
        with psycopg.connect(url) as lock:
            lock.execute("LOCK TABLE monitoring_label IN SHARE MODE")
            jobs_run_model.delay(model.pk)
            assert wait_for(lambda: waiting_to_write("monitoring_label"), 120)
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        # then nothing of it is committed
        assert Label.objects.filter(model=model).count() == 0
        assert not JoinState.objects.filter(model=model, outcome_high_water__gt=0).exists()
        # when a worker starts again (with beat, which enqueues every model's jobs)
        restarted = celery_worker(
            database_url(),
            redis_broker,
            "--beat",
            "--schedule",
            str(tmp_path / "beat"),
            env={"CANARY_JOBS_INTERVAL_S": "2"},
        )
        try:
            expected = expected_labels(model.pk)
            assert wait_for(
                lambda: Label.objects.filter(model=model).count() == len(expected), 240, 1
            )
        finally:
            stop(restarted)
    finally:
        stop(worker)
    # then the joined result equals the independent computation
    assert len(expected) == 80_000
    pd.testing.assert_frame_equal(
        joined_labels(model.pk).reset_index(drop=True), expected.reset_index(drop=True)
    )
