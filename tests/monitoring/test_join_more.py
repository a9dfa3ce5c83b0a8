"""Claims, the sweep in the beat schedule, and outcomes waiting for their predictions."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import JoinState, Label
from monitoring.pipeline.join import join_state_lock, outcomes_join
from tests.conftest import NOW, need_service, outcome, prediction

pytestmark = pytest.mark.django_db(transaction=True)


def ingest(model, kind, records):
    return records_ingest(model=model, kind=kind, records=records, enqueue_jobs=False)


def test_a_join_held_by_another_worker_is_skipped_and_a_dead_one_frees_it(model):
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    ingest(model, "predictions", [prediction(1)])
    ingest(model, "outcomes", [outcome(1)])
    JoinState.objects.get_or_create(model=model)
    holding, release = threading.Event(), threading.Event()

    def other_worker():
        with transaction.atomic():
            assert join_state_lock(model.pk) is not None
            holding.set()
            release.wait(10)
        connections.close_all()  # its connection dies: the claim goes with it

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert holding.wait(10)
    assert outcomes_join(model_id=model.pk).claimed is False
    release.set()
    thread.join()
    run = outcomes_join(model_id=model.pk)
    assert run.claimed and run.labels_written == 1


def test_the_beat_schedule_runs_the_jobs_and_a_sweep(settings):
    from config.celery import schedule_jobs

    class Sender:
        def __init__(self):
            self.added = []

        def signature(self, name, kwargs=None):
            return (name, kwargs or {})

        def add_periodic_task(self, every_s, signature, name=None):
            self.added.append((name, every_s, signature))

    sender = Sender()
    schedule_jobs(sender)
    assert ("jobs", settings.CANARY_JOBS_INTERVAL_S, ("monitoring.tasks.jobs_run_all", {})) in (
        sender.added
    )
    sweep = ("monitoring.tasks.jobs_run_all", {"sweep": True})
    assert ("sweep", settings.CANARY_SWEEP_INTERVAL_S, sweep) in sender.added


def test_unmatched_outcomes_are_counted_by_their_arrival_until_their_prediction_comes(
    model, writer
):
    # given: outcomes for five predictions that have not arrived, two observed a day later
    day1, day2 = NOW + timedelta(days=1), NOW + timedelta(days=2)
    ingest(model, "outcomes", [outcome(i, at=day1) for i in range(3)])
    ingest(model, "outcomes", [outcome(i, at=day2) for i in range(3, 5)])
    ingest(model, "outcomes", [outcome(0, at=day2, outcome=0)])  # a correction: same prediction
    url = "/api/v1/models/churn/metrics?metric=unmatched_outcomes&granularity=day"
    # when
    points = writer.get(url).json()["points"]
    # then
    assert [(p["start"][:10], p["value"]) for p in points] == [
        (day1.date().isoformat(), 3),
        (day2.date().isoformat(), 2),
    ]
    # when two predictions arrive, their outcomes no longer wait
    ingest(model, "predictions", [prediction(0), prediction(4)])
    jobs_run(model_id=model.pk)
    points = writer.get(url).json()["points"]
    assert [p["value"] for p in points] == [2, 1]
    assert Label.objects.count() == 2
    assert writer.get(url + "&segment=web").status_code == 400
