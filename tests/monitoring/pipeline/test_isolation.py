"""Jobs that isolate failure: poison rows written past validation break their own hour (or
their model's out-of-window rows) alone; every other model's and hour's numbers stay right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from sklearn.metrics import confusion_matrix

from factory.models import ModelVersion
from factory.services import model_create
from monitoring.ingest.partitions import partitions_ensure
from monitoring.ingest.services import records_ingest
from monitoring.models import (
    DirtyHour,
    FeatureBins,
    HourlyAggregate,
    JobFailure,
    JobHealth,
    JobStage,
    Period,
    Prediction,
    Sketch,
    SketchKind,
)
from monitoring.stats.codec import histogram_decode
from tests.conftest import NOW, outcome, prediction

pytestmark = pytest.mark.django_db

HOURS = [NOW - timedelta(hours=h) for h in (3, 2, 1)]
LAST_HOUR = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
HUGE = 10**400  # a float cannot hold it: float() overflows, PostgreSQL's float8 cast fails


def records_for(seed: int) -> tuple[list[dict], list[dict]]:
    rng = np.random.default_rng(seed)
    predictions, outcomes = [], []
    for h, hour in enumerate(HOURS):
        for i in range(12):
            n = h * 100 + i
            score = float(rng.uniform())
            predictions.append(
                prediction(
                    n,
                    at=hour + timedelta(minutes=i * 4),
                    prediction=int(score > 0.5),
                    score=score,
                    features={"age": float(rng.normal(40, 10)), "plan": "basic"},
                )
            )
            outcomes.append(outcome(n, outcome=int(rng.uniform() < score)))
    return predictions, outcomes


def model_with_data(name: str, seed: int):
    model = model_create(
        name=name, task="binary_classification", positive_class=1, on_call=[f"{name}@example.com"]
    )
    predictions, outcomes = records_for(seed)
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    return model, predictions, outcomes


def poison_write(model, pid: str, at: datetime, features: dict) -> None:
    """A row stored straight into the table, as if validation had been bypassed."""
    version = ModelVersion.objects.get(model=model)
    partitions_ensure([at])  # ingestion would not make a month outside the accepted window
    Prediction.objects.create(
        model=model,
        version=version,
        prediction_id=pid,
        timestamp=at,
        prediction="1",
        score=0.5,
        features=features,
    )
    hour = at.replace(minute=0, second=0, microsecond=0)
    DirtyHour.objects.get_or_create(model=model, hour=hour)


def expected_by_hour(predictions: list[dict], outcomes: list[dict]) -> dict:
    """Independently of the pipeline: per hour, the counts and confusion matrix (sklearn)
    and the ages that the age histogram must count."""
    labels = {o["prediction_id"]: o["outcome"] for o in outcomes}
    out = {}
    for hour in HOURS:
        rows = [
            p
            for p in predictions
            if datetime.fromisoformat(p["timestamp"]) - hour < timedelta(hours=1)
            and datetime.fromisoformat(p["timestamp"]) >= hour
        ]
        actual = [labels[p["prediction_id"]] for p in rows]
        predicted = [p["prediction"] for p in rows]
        _tn, fp, fn, tp = confusion_matrix(actual, predicted, labels=[0, 1]).ravel()
        ages = np.array([p["features"]["age"] for p in rows])
        out[hour] = {"predictions": len(rows), "tp": tp, "fp": fp, "fn": fn, "ages": ages}
    return out


def assert_hour_right(model, hour: datetime, expected: dict) -> None:
    row = HourlyAggregate.objects.get(model=model, hour=hour)
    assert (row.predictions, row.labelled) == (expected["predictions"], expected["predictions"])
    assert (row.tp, row.fp, row.fn) == (expected["tp"], expected["fp"], expected["fn"])
    sketch = Sketch.objects.get(
        model=model, period=Period.HOUR, start=hour, kind=SketchKind.NUMERICAL, name="age"
    )
    assert (sketch.n, sketch.missing) == (len(expected["ages"]), 0)
    bins = FeatureBins.objects.get(model=model, name="age")
    edges = np.frombuffer(bytes(bins.edges), "<f8")
    histogram = histogram_decode(bytes(sketch.data), edges)
    ages = expected["ages"]
    # bins are closed on the right: (edges[i-1], edges[i]]
    want = np.bincount(np.searchsorted(edges, ages, side="left"), minlength=edges.size + 1)
    assert histogram.counts.tolist() == want.tolist()
    assert histogram.sums.sum() == pytest.approx(ages.sum())
    assert histogram.sum_sq == pytest.approx(np.dot(ages, ages))


@pytest.fixture
def poisoned():
    """Three models; the middle one gets a year-9999 row and a 401-digit feature value in
    its second hour."""
    models = [model_with_data(name, seed) for seed, name in enumerate(["a", "b", "c"])]
    victim = models[1][0]
    poison_write(victim, "poison-year", LAST_HOUR, {"age": 30, "plan": "basic"})
    poison_write(victim, "poison-huge", HOURS[1] + timedelta(minutes=59), {"age": HUGE})
    return models


def test_poison_rows_leave_other_models_and_hours_right(poisoned, client_with):
    # when
    with pytest.raises(CommandError, match="1 of 3 models have failing jobs: b"):
        call_command("run_jobs", stdout=StringIO(), stderr=StringIO())

    # then: every model's every other hour is right
    for model, predictions, outcomes in poisoned:
        expected = expected_by_hour(predictions, outcomes)
        for hour in HOURS:
            if model.name == "b" and hour == HOURS[1]:
                continue
            assert_hour_right(model, hour, expected[hour])
    # and the failures are recorded, one per poison
    victim = poisoned[1][0]
    failures = {f.stage: f for f in JobFailure.objects.filter(model=victim)}
    assert set(failures) == {JobStage.TIMESTAMPS, JobStage.AGGREGATE}
    assert "1 predictions have event times outside" in failures[JobStage.TIMESTAMPS].error
    assert failures[JobStage.AGGREGATE].first_hour == HOURS[1]
    assert failures[JobStage.AGGREGATE].last_hour == HOURS[1]
    assert "range" in failures[JobStage.AGGREGATE].error
    assert not JobFailure.objects.exclude(model=victim).exists()

    # and visible in the model's API answer
    reader = client_with("read")
    body = reader.get("/api/v1/models/b").json()["monitoring"]
    assert body["status"] == "failing" and body["failed_runs"] == 1
    stages = {f["stage"]: f for f in body["failures"]}
    assert stages["aggregate"]["first_hour"] == HOURS[1].isoformat().replace("+00:00", "Z")
    assert reader.get("/api/v1/models/a").json()["monitoring"]["status"] == "ok"

    # and on the model page, at the top
    browser = Client()
    browser.force_login(User.objects.create_user("ana"))
    page = browser.get("/models/b/").content.decode()
    assert page.index('id="monitoring-failing"') < page.index('class="page-head"')
    assert "Monitoring of b is failing" in page
    assert "outside float range" in page or "out of range" in page
    assert 'id="monitoring-failing"' not in browser.get("/models/a/").content.decode()


def test_a_failed_hour_is_retried_and_cleared_once_its_poison_is_gone(poisoned):
    victim = poisoned[1][0]
    with pytest.raises(CommandError):
        call_command("run_jobs", "--model", "b", stdout=StringIO(), stderr=StringIO())

    # when the poison rows are deleted and the hour has new data
    Prediction.objects.filter(prediction_id__startswith="poison").delete()
    DirtyHour.objects.create(model=victim, hour=HOURS[1])
    call_command("run_jobs", "--model", "b", stdout=StringIO())

    # then the hour is right and nothing is failing
    predictions, outcomes = poisoned[1][1:]
    assert_hour_right(victim, HOURS[1], expected_by_hour(predictions, outcomes)[HOURS[1]])
    assert not JobFailure.objects.filter(model=victim).exists()
    assert JobHealth.objects.get(model=victim).failed_runs == 0


def test_run_jobs_processes_every_model_when_one_is_poisoned(db):
    # given twenty models, the seventh with a year-9999 row
    names = [f"m{i:02d}" for i in range(20)]
    for i, name in enumerate(names):
        model = model_create(name=name, task="binary_classification", positive_class=1)
        records_ingest(model=model, kind="predictions", records=[prediction(i)], enqueue_jobs=False)
        if i == 6:
            poison_write(model, "poison", LAST_HOUR, {"age": 1})
    out, err = StringIO(), StringIO()

    # when
    with pytest.raises(CommandError, match="1 of 20 models have failing jobs: m06"):
        call_command("run_jobs", stdout=out, stderr=err)

    # then every model was aggregated, the poisoned one too (its good hour)
    assert HourlyAggregate.objects.filter(hour=NOW.replace(minute=0)).count() == 20
    assert out.getvalue().count("1 hours aggregated") == 20
    assert "m06: failing: timestamps:" in err.getvalue()


def test_on_call_hears_once_that_monitoring_fails_and_once_that_it_is_back(
    model, smtp_server, settings
):
    # given a model with a poison row and an alert after three failed runs
    settings.CANARY_JOB_FAILURES_ALERT = 3
    records_ingest(model=model, kind="predictions", records=[prediction(1)], enqueue_jobs=False)
    poison_write(model, "poison", LAST_HOUR, {"age": 1})

    # when the jobs run five times
    for _ in range(5):
        with pytest.raises(CommandError):
            call_command("run_jobs", stdout=StringIO(), stderr=StringIO())

    # then the on-call list got exactly one message, after the third run
    assert len(smtp_server.messages) == 1
    recipients, message = smtp_server.messages[0]
    assert recipients == ["oncall@example.com"]
    assert message["Subject"] == "[Canary] FAILING: monitoring of churn is failing"
    body = message.get_content()
    assert "failed 3 runs in a row" in body
    assert "predictions have event times outside" in body
    assert "/models/churn/" in body

    # when the poison is gone
    Prediction.objects.filter(prediction_id="poison").delete()
    call_command("run_jobs", stdout=StringIO())
    call_command("run_jobs", stdout=StringIO())

    # then one resolved message
    assert len(smtp_server.messages) == 2
    assert smtp_server.messages[1][1]["Subject"] == "[Canary] RESOLVED: monitoring of churn is back"
