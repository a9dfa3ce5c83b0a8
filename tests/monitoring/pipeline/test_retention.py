"""Retention: raw months dropped whole, keys unique across months, sealed hours kept as they
were, and the quarantine and evaluation horizons. PostgreSQL where partitions are the point."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test import Client
from freezegun import freeze_time

from accounts.roles import Role, user_role_set
from config.celery import schedule_jobs
from monitoring.ingest.partitions import partitions_ensure
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import (
    AlertEvaluation,
    AlertRule,
    DirtyHour,
    HourlyAggregate,
    JobFailure,
    JobStage,
    Label,
    Outcome,
    Prediction,
    PredictionKey,
    QuarantinedRecord,
    RetentionRun,
    Sketch,
    SliceDay,
    SliceHour,
)
from monitoring.pipeline.retention import retention_run
from tests.conftest import NOW, need_service, outcome, prediction
from tests.factory.conftest import LINEAGE

pytestmark = pytest.mark.django_db(transaction=True)

# With the default 400 days, March 2026 (the tests' data) is wholly before the horizon here.
LATER = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
FEBRUARY, MARCH = datetime(2026, 2, 10, 12, tzinfo=UTC), NOW


@pytest.fixture(autouse=True)
def no_rate_limit(settings):
    """DRF's throttle keeps time.time from import, which frozen time cannot call."""
    settings.CANARY_INGEST_RATE = None


def ingest(model, kind, records):
    return records_ingest(model=model, kind=kind, records=records, enqueue_jobs=False)


def partitions() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent IN ('monitoring_prediction'::regclass,
                'monitoring_label'::regclass, 'monitoring_outcome'::regclass)"""
        )
        return {name for (name,) in cursor.fetchall()}


def need_postgres():
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")


def test_an_id_stored_in_one_month_is_a_conflict_in_another_and_a_duplicate_in_its_own(model):
    # given p-1 stored in February
    assert ingest(model, "predictions", [prediction(1, at=FEBRUARY)]).accepted == 1
    # when it comes again with a March timestamp, and again as it was
    moved = ingest(model, "predictions", [prediction(1, at=MARCH), prediction(2, at=MARCH)])
    again = ingest(model, "predictions", [prediction(1, at=FEBRUARY)])
    # then March's copy is a conflict (its valid neighbour is stored), the same one a duplicate
    assert (moved.accepted, moved.rejected) == (1, 1)
    assert moved.errors[0]["code"] == "conflict" and moved.errors[0]["prediction_id"] == "p-1"
    assert (again.accepted, again.duplicates) == (0, 1)
    assert Prediction.objects.get(prediction_id="p-1").timestamp == FEBRUARY


def test_an_id_whose_prediction_was_deleted_is_taken_again(model):
    # given p-1 stored in February, then its row deleted (its key, on PostgreSQL, stays)
    ingest(model, "predictions", [prediction(1, at=FEBRUARY)])
    Prediction.objects.filter(prediction_id="p-1").delete()
    # when p-1 comes again for March, then once more
    again = ingest(model, "predictions", [prediction(1, at=MARCH)])
    repeated = ingest(model, "predictions", [prediction(1, at=MARCH)])
    # then it is stored for March, and the repeat is a duplicate of that
    assert again.accepted == 1 and repeated.duplicates == 1
    assert Prediction.objects.get(prediction_id="p-1").timestamp == MARCH


def test_the_same_id_for_two_months_posted_at_once_is_stored_once_and_refused_once(model):
    need_postgres()
    # given the version and both months known (so that only the key can make one wait) ...
    ingest(model, "predictions", [prediction(0, at=FEBRUARY), prediction(9, at=MARCH)])
    # ... and a first request that stores p-1 in February and holds its transaction open
    first_in, release = threading.Event(), threading.Event()
    receipts = {}

    def first():
        try:
            with transaction.atomic():
                receipts["first"] = ingest(model, "predictions", [prediction(1, at=FEBRUARY)])
                first_in.set()
                release.wait(10)
        finally:
            connections.close_all()

    def second():
        try:
            receipts["second"] = ingest(model, "predictions", [prediction(1, at=MARCH)])
        finally:
            connections.close_all()

    one = threading.Thread(target=first)
    one.start()
    assert first_in.wait(10)
    # when a second request posts p-1 for March meanwhile
    two = threading.Thread(target=second)
    two.start()
    # then it waits on the model's lock (the monthly partitions alone would take both) ...
    assert waiting_on_advisory_lock()
    release.set()
    one.join(10)
    two.join(10)
    # ... and, once the first commits, finds p-1 stored: one row, one conflict
    assert receipts["first"].accepted == 1
    assert (receipts["second"].accepted, receipts["second"].rejected) == (0, 1)
    assert receipts["second"].errors[0]["code"] == "conflict"
    assert Prediction.objects.filter(prediction_id="p-1").count() == 1


def waiting_on_advisory_lock() -> bool:
    """Whether some session waits for an advisory lock, asked for up to five seconds."""
    for _ in range(50):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if cursor.fetchone()[0]:
                return True
        threading.Event().wait(0.1)
    return False


def test_an_outcome_stored_in_an_earlier_month_is_a_duplicate_or_a_conflict(model):
    need_postgres()
    # given an outcome received two months ago (moved there: arrival is the partition key)
    ingest(model, "outcomes", [outcome(1, outcome=1)])
    partitions_ensure([datetime.now(UTC) - timedelta(days=62)])
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE monitoring_outcome SET received_at = received_at - interval '62 days'"
        )
    assert len(partitions()) > 0 and Outcome.objects.count() == 1
    # when the same outcome comes again, and another with the same observed_at
    same = ingest(model, "outcomes", [outcome(1, outcome=1)])
    other = ingest(model, "outcomes", [outcome(1, outcome=0)])
    # then the first is a duplicate and the second a conflict: still one row
    assert (same.accepted, same.duplicates) == (0, 1)
    assert (other.accepted, other.rejected) == (0, 1) and other.errors[0]["code"] == "conflict"
    assert Outcome.objects.count() == 1


def test_a_prediction_older_than_the_horizon_is_quarantined_as_expired(model, writer, settings):
    # given a 30-day horizon
    settings.CANARY_RAW_RETENTION_DAYS = 30
    old, recent = NOW - timedelta(days=31), NOW - timedelta(days=29)
    with freeze_time(NOW):
        # when a request holds one prediction before it and one after
        receipt = ingest(model, "predictions", [prediction(1, at=old), prediction(2, at=recent)])
        csv = "prediction_id,timestamp,model_version,prediction,score\n" + "".join(
            f"c-{i},{at.isoformat()},1.0.0,1,0.5\n" for i, at in ((1, old), (2, recent))
        )
        posted = writer.post("/api/v1/models/churn/predictions", csv, content_type="text/csv")
    # then the old one is quarantined as expired, its neighbour stored, in JSON and in CSV
    assert (receipt.accepted, receipt.rejected) == (1, 1)
    assert receipt.errors[0]["code"] == "expired" and receipt.errors[0]["field"] == "timestamp"
    assert "30 days" in receipt.errors[0]["message"]
    assert (posted.json()["accepted"], posted.json()["rejected"]) == (1, 1)
    assert posted.json()["errors"][0]["code"] == "expired"
    assert set(Prediction.objects.values_list("prediction_id", flat=True)) == {"p-2", "c-2"}
    assert set(QuarantinedRecord.objects.values_list("code", flat=True)) == {"expired"}


def history(model):
    """Two days of predictions with features, and their outcomes, aggregated."""
    rows = [
        prediction(
            i,
            at=NOW + timedelta(days=i % 2, minutes=i),
            prediction=i % 2,
            score=(i % 10) / 10,
            features={"age": 20 + (i * (1 + i % 2)) % 50, "plan": ["a", "b"][i % 3 == 0]},
        )
        for i in range(200)
    ]
    ingest(model, "predictions", rows)
    ingest(model, "outcomes", [outcome(i, outcome=(i // 3) % 2) for i in range(150)])
    jobs_run(model_id=model.pk)


def answers(writer) -> dict:
    """What the API says of the old windows: series and drift."""
    base = "/api/v1/models/churn"
    window = "start=2026-03-10T00:00:00Z&end=2026-03-12T00:00:00Z"
    got = {
        metric: writer.get(f"{base}/metrics?metric={metric}&granularity=hour&{window}").json()
        for metric in ("predictions", "accuracy", "roc_auc", "label_coverage", "mean_score")
    }
    drift = (
        f"{base}/drift?start=2026-03-11T00:00:00Z&end=2026-03-12T00:00:00Z"
        "&reference_start=2026-03-10T00:00:00Z&reference_end=2026-03-11T00:00:00Z"
    )
    got["drift"] = writer.get(drift).json()
    return got


def aggregates(model) -> list:
    hourly = HourlyAggregate.objects.filter(model=model).order_by("hour", "segment")
    sketches = Sketch.objects.filter(model=model).order_by("period", "start", "kind", "name")
    slices = SliceDay.objects.filter(model=model).order_by("day")
    return [
        *hourly.values(),
        *sketches.values_list("start", "kind", "name", "n", "data"),
        *slices.values_list("day", "sums"),
    ]


def test_sealed_hours_keep_their_aggregates_when_raw_rows_go_and_late_work_arrives(model, writer):
    need_postgres()
    # given two days of March 2026 aggregated, and what the API says of them
    history(model)
    before, stored = answers(writer), aggregates(model)
    assert before["drift"]["features"] and before["predictions"]["points"]
    with freeze_time(LATER):
        # when retention runs after the whole month passed the horizon
        run = retention_run()
        # then March's raw rows are gone, a month at a time
        assert "2026-03" in run.months_removed
        assert not {"monitoring_prediction_p202603", "monitoring_label_p202603"} & partitions()
        assert not Prediction.objects.exists() and not Label.objects.exists()
        # when late work touches the sealed hours: an outcome for a removed prediction, a
        # reference registered for the version, a backfill marking an hour dirty, a sweep
        late = ingest(model, "outcomes", [outcome(3, at=LATER - timedelta(days=1), outcome=0)])
        reference = {"rows": [{"features": {"age": 30, "plan": "a"}, "prediction": 1}] * 20}
        registered = writer.post(
            "/api/v1/models/churn/versions",
            {"version": "1.0.0", "lineage": LINEAGE, "reference": reference},
            format="json",
        )
        DirtyHour.objects.create(model=model, hour=NOW.replace(minute=0))
        jobs_run(model_id=model.pk, sweep=True)
        assert DirtyHour.objects.count() == 0
        after = answers(writer)
    # then nothing about the old windows changed
    assert registered.status_code in (200, 201)
    assert late.accepted == 1 and Outcome.objects.filter(prediction_id="p-3").count() == 2
    assert aggregates(model) == stored
    assert after == before


def test_raw_rows_of_months_past_the_horizon_go_and_their_aggregates_stay(model):
    # given March 2026 aggregated, and a prediction of May 2026 (inside the horizon later)
    history(model)
    ingest(model, "predictions", [prediction(900, at=datetime(2026, 5, 2, tzinfo=UTC))])
    stored = aggregates(model)
    assert SliceHour.objects.filter(model=model).exists()
    # when retention runs when March is wholly before the horizon (SQLite: a plain delete)
    run = retention_run(now=LATER)
    # then March's predictions and labels are gone, May's prediction stays, aggregates stay
    assert "2026-03" in run.months_removed
    assert list(Prediction.objects.values_list("prediction_id", flat=True)) == ["p-900"]
    assert not Label.objects.exists()
    assert list(PredictionKey.objects.values_list("prediction_id", flat=True)) == (
        ["p-900"] if connection.vendor == "postgresql" else []
    )
    assert aggregates(model) == stored
    # explain's hour entries, which only an hour aggregated again would need, go with them
    assert not SliceHour.objects.filter(model=model).exists()
    # and a second run removes nothing more
    assert retention_run(now=LATER).months_removed == []


def test_an_outcome_for_a_removed_prediction_is_kept_and_counted_as_waiting(model, writer):
    need_postgres()
    history(model)
    with freeze_time(LATER):
        retention_run()
        # when an outcome arrives for a prediction that retention removed
        # (p-180 was stored and removed; p-500 never came)
        receipt = ingest(model, "outcomes", [outcome(500, at=LATER - timedelta(days=2))])
        ingest(model, "outcomes", [outcome(180, at=LATER - timedelta(days=2), outcome=0)])
        jobs_run(model_id=model.pk)
        url = "/api/v1/models/churn/metrics?metric=unmatched_outcomes&granularity=day"
        points = writer.get(f"{url}&start=2027-05-30T00:00:00Z&end=2027-05-31T00:00:00Z")
    # then it is accepted, stored, and counted with the outcomes waiting for a prediction
    assert receipt.accepted == 1
    assert Outcome.objects.filter(prediction_id__in=["p-180", "p-500"]).count() == 2
    assert [p["value"] for p in points.json()["points"]] == [2]


def viewer_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_rows_page_says_when_a_windows_rows_were_removed(model, django_user_model):
    need_postgres()
    history(model)
    user = django_user_model.objects.create_user("ds", password="a-long-password")
    user_role_set(user=user, role=Role.VIEWER)
    url = "/models/churn/rows/?start=2026-03-10T00:00:00Z"
    before = viewer_client(user).get(url)
    assert before.status_code == 200 and "were removed" not in before.content.decode()
    with freeze_time(LATER):
        retention_run()
        client = viewer_client(user)  # a session of the frozen time
        old = client.get(url).content.decode()
        recent = client.get("/models/churn/rows/?start=2026-04-01T00:00:00Z").content.decode()
    # then the window reaching before the removed months says so, a later one does not
    assert 'id="rows-removed"' in old and "Raw rows before 2026-04-01 00:00 UTC" in old
    assert "200 rows" in before.content.decode() and "0 rows" in old
    assert "rows ·" in recent and "were removed" not in recent


def test_retention_makes_the_coming_months_partitions(db):
    need_postgres()
    with freeze_time(datetime(2031, 1, 31, tzinfo=UTC)):
        retention_run()
    names = partitions()
    for month in ("203101", "203102", "203103"):
        assert {f"monitoring_{t}_p{month}" for t in ("prediction", "label", "outcome")} <= names


def test_quarantine_and_evaluation_history_have_their_own_horizons(model, settings):
    # given quarantined records and evaluations, some past their horizons
    settings.CANARY_QUARANTINE_RETENTION_DAYS = 10
    settings.CANARY_EVALUATION_RETENTION_DAYS = 2
    ingest(model, "predictions", [{"prediction_id": f"q-{i}"} for i in range(3)])
    QuarantinedRecord.objects.filter(index__lt=2).update(created_at=NOW - timedelta(days=11))
    QuarantinedRecord.objects.filter(index=2).update(created_at=NOW - timedelta(days=9))
    rule = AlertRule.objects.create(model=model, metric="accuracy", kind="static", lower=0.5)
    for days in (3, 1):
        AlertEvaluation.objects.create(
            rule=rule,
            run_id="00000000-0000-0000-0000-000000000001",
            evaluated_at=NOW - timedelta(days=days),
            verdict="ok",
        )
    # when retention runs
    run = retention_run(now=NOW)
    # then only what is past its own horizon went
    assert (run.quarantine_removed, run.evaluations_removed) == (2, 1)
    assert list(QuarantinedRecord.objects.values_list("index", flat=True)) == [2]
    assert AlertEvaluation.objects.get().evaluated_at == NOW - timedelta(days=1)


def test_failures_of_hours_that_are_sealed_now_are_closed(model):
    JobFailure.objects.create(
        model=model,
        stage=JobStage.AGGREGATE,
        first_hour=NOW,
        last_hour=NOW,
        error="boom",
        first_seen=NOW,
        last_seen=NOW,
    )
    retention_run(now=LATER)
    assert not JobFailure.objects.exists()


def test_beat_runs_retention_and_the_command_reports_what_it_removed(settings, db, capsys):
    class Sender:
        added: list = []

        def signature(self, name, kwargs=None):
            return (name, kwargs or {})

        def add_periodic_task(self, every_s, signature, name=None):
            self.added.append((name, every_s, signature))

    schedule_jobs(Sender())
    assert (
        "retention",
        settings.CANARY_RETENTION_INTERVAL_S,
        ("monitoring.tasks.retention_run", {}),
    ) in Sender.added
    call_command("retention")
    out = capsys.readouterr().out
    assert "raw rows before" in out and RetentionRun.objects.count() == 1
    assert json.dumps(RetentionRun.objects.get().months_removed)
