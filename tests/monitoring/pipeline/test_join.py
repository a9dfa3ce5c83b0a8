"""The join and the hourly aggregates, checked against numbers computed here from raw rows;
claims, the sweep in the beat schedule, and outcomes waiting for their predictions."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from django.db import connection, connections, transaction

from config.celery import schedule_jobs
from monitoring.ingest.partitions import AGGREGATE_TABLES
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.series import metric_series
from monitoring.models import HourlyAggregate, JoinState, Label, Prediction
from monitoring.pipeline.join import join_state_lock, outcomes_join
from tests.conftest import NOW, need_service, outcome, prediction

pytestmark = pytest.mark.django_db(transaction=True)


def ingest(model, kind, records):
    return records_ingest(model=model, kind=kind, records=records, enqueue_jobs=False)


def test_outcome_before_its_prediction_waits_and_is_joined_when_it_arrives(model):
    ingest(model, "outcomes", [outcome(1, outcome=0)])
    jobs_run(model_id=model.pk)
    assert not Label.objects.exists()

    ingest(model, "predictions", [prediction(1, prediction=1)])
    jobs_run(model_id=model.pk)

    label = Label.objects.get()
    assert label.prediction.prediction_id == "p-1"
    assert label.outcome == "0" and label.correct is False
    assert label.delay_s == pytest.approx(2 * 86400)


def test_a_correction_replaces_the_label_and_the_old_window_is_recomputed(model):
    ingest(model, "predictions", [prediction(1, prediction=1)])
    ingest(model, "outcomes", [outcome(1, outcome=0)])
    jobs_run(model_id=model.pk)
    assert metric_series(model=model, metric="accuracy")[0].value == 0.0

    ingest(model, "outcomes", [outcome(1, at=NOW + timedelta(days=30), outcome=1)])
    jobs_run(model_id=model.pk)

    assert Label.objects.get().outcome == "1"
    assert metric_series(model=model, metric="accuracy")[0].value == 1.0


def test_an_older_outcome_arriving_late_does_not_replace_a_newer_one(model):
    ingest(model, "predictions", [prediction(1, prediction=1)])
    ingest(model, "outcomes", [outcome(1, at=NOW + timedelta(days=5), outcome=1)])
    jobs_run(model_id=model.pk)
    ingest(model, "outcomes", [outcome(1, at=NOW + timedelta(days=1), outcome=0)])
    jobs_run(model_id=model.pk)
    assert Label.objects.get().outcome == "1"


def test_rerunning_the_jobs_changes_nothing(model):
    ingest(model, "predictions", [prediction(i) for i in range(20)])
    ingest(model, "outcomes", [outcome(i) for i in range(0, 20, 2)])
    jobs_run(model_id=model.pk)
    before = list(HourlyAggregate.objects.values())
    labels = list(Label.objects.values())

    report = jobs_run(model_id=model.pk)

    assert report.labels_written == 0 and report.hours_refreshed == 0
    assert list(HourlyAggregate.objects.values()) == before
    assert list(Label.objects.values()) == labels
    state = JoinState.objects.get(model=model)
    assert state.prediction_high_water == Prediction.objects.latest("id").id


def test_sweep_repairs_rows_below_the_high_water_mark(model):
    ingest(model, "predictions", [prediction(1)])
    ingest(model, "outcomes", [outcome(1)])
    JoinState.objects.create(model=model, outcome_high_water=10**9, prediction_high_water=10**9)
    outcomes_join(model_id=model.pk)
    assert not Label.objects.exists()  # as if those rows had committed late
    outcomes_join(model_id=model.pk, sweep=True)
    assert Label.objects.count() == 1


def random_traffic(rng, n=600):
    predictions, outcomes = [], []
    for i in range(n):
        at = NOW - timedelta(hours=float(rng.uniform(0, 72)))
        score = float(rng.uniform())
        predictions.append(
            prediction(
                i,
                at=at,
                score=round(score, 3),
                prediction=int(score > 0.5),
                model_version=str(rng.choice(["1.0", "2.0"])),
                segment=str(rng.choice(["web", "app"])),
            )
        )
        if rng.uniform() < 0.7:
            seen = at + timedelta(hours=float(rng.uniform(1, 200)))
            truth = int(rng.uniform() < score)
            outcomes.append(outcome(i, at=seen, outcome=truth, values={"revenue": i % 17}))
            if rng.uniform() < 0.1:  # a correction, later
                outcomes.append(
                    outcome(
                        i, at=seen + timedelta(days=3), outcome=1 - truth, values={"revenue": 5}
                    )
                )
    order = rng.permutation(len(outcomes))
    return predictions, [outcomes[i] for i in order]


def expected_daily(predictions: list[dict], outcomes: list[dict]) -> pd.DataFrame:
    """Per day of prediction: the metrics, from raw records, with pandas."""
    p = pd.DataFrame(predictions)
    p["day"] = pd.to_datetime(p["timestamp"]).dt.floor("D")
    o = pd.DataFrame(outcomes)
    o["observed_at"] = pd.to_datetime(o["observed_at"])
    latest = o.sort_values("observed_at").groupby("prediction_id").tail(1)
    latest = latest.assign(revenue=[v["revenue"] for v in latest["values"]])
    joined = p.merge(latest, on="prediction_id", how="left")
    labelled = joined.dropna(subset=["outcome"])
    return pd.DataFrame(
        {
            "predictions": joined.groupby("day").size(),
            "label_coverage": joined.groupby("day")["outcome"].apply(lambda s: s.notna().mean()),
            "accuracy": labelled.assign(ok=labelled["prediction"] == labelled["outcome"])
            .groupby("day")["ok"]
            .mean(),
            "mean_score": joined.groupby("day")["score"].mean(),
            "value:revenue": labelled.groupby("day")["revenue"].mean(),
        }
    )


def test_daily_metrics_match_the_raw_rows(model):
    # given: traffic over three days, outcomes shuffled, some corrected, in several batches
    predictions, outcomes = random_traffic(np.random.default_rng(3))
    ingest(model, "outcomes", outcomes[:100])  # some before their predictions
    ingest(model, "predictions", predictions[:300])
    jobs_run(model_id=model.pk)
    ingest(model, "predictions", predictions[300:])
    ingest(model, "outcomes", outcomes[100:])
    # when
    jobs_run(model_id=model.pk)
    # then
    expected = expected_daily(predictions, outcomes)
    for metric in expected.columns:
        points = metric_series(model=model, metric=metric, granularity="day")
        got = pd.Series({pd.Timestamp(p.start): p.value for p in points}, dtype=float)
        want = expected[metric].astype(float)
        pd.testing.assert_series_equal(
            got.sort_index(),
            want.sort_index(),
            check_names=False,
            check_freq=False,
            check_index_type=False,
            rtol=1e-9,
        )


def test_hour_windows_sum_to_the_day(model):
    predictions, outcomes = random_traffic(np.random.default_rng(5), n=200)
    ingest(model, "predictions", predictions)
    ingest(model, "outcomes", outcomes)
    jobs_run(model_id=model.pk)
    hours = metric_series(model=model, metric="predictions", granularity="hour")
    days = metric_series(model=model, metric="predictions", granularity="day")
    weeks = metric_series(model=model, metric="predictions", granularity="week")
    assert sum(p.n for p in hours) == sum(p.n for p in days) == sum(p.n for p in weeks) == 200
    assert all(p.start.weekday() == 0 for p in weeks)


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


def test_the_aggregates_a_run_writes_are_read_on_statistics_that_know_them(model):
    """Pages compare a version's hours with another's in the aggregate tables; planned on
    statistics from before the rows were written, that took a nested loop over every pair."""
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    # given the aggregate tables analysed while they held nothing of the model
    with connection.cursor() as cursor:
        for table in AGGREGATE_TABLES:
            cursor.execute(f"ANALYZE {table}")
    # when 600 hours of predictions are ingested and the jobs run
    hours = [prediction(i, at=NOW - timedelta(hours=i)) for i in range(600)]
    ingest(model, "predictions", hours)
    jobs_run(model_id=model.pk)
    # then the planner knows the hours' aggregates are there
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'monitoring_hourlyaggregate'"
        )
        assert cursor.fetchone()[0] == HourlyAggregate.objects.count() == 600


def planner_rows(table: str) -> float:
    """The rows the planner believes the partition holding NOW has."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [partition(table)])
        return cursor.fetchone()[0]


def partition(table: str) -> str:
    return f"{table}_p{NOW:%Y%m}"


def test_a_bulk_load_is_joined_on_the_statistics_of_the_rows_there_are(model):
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    # given the month's statistics taken while it was empty (autovacuum late, or off) ...
    ingest(model, "predictions", [prediction(0)])
    with connection.cursor() as cursor:
        for table in ("monitoring_prediction", "monitoring_label"):
            cursor.execute(f"TRUNCATE {partition(table)}")
            cursor.execute(f"ANALYZE {partition(table)}")
    assert planner_rows("monitoring_prediction") <= 0
    # ... and then 3,000 predictions and their outcomes copied in
    ingest(model, "predictions", [prediction(i) for i in range(1, 3001)])
    ingest(model, "outcomes", [outcome(i) for i in range(1, 3001)])
    # when the join runs
    run = outcomes_join(model_id=model.pk)
    # then it planned on statistics that know the rows, and labelled every prediction
    assert planner_rows("monitoring_prediction") == 3000
    assert run.labels_written == 3000
