"""A backfill fanned out over day ranges writes what the regular job writes, hour and day."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from config.celery import app
from factory.services import model_create
from monitoring.ingest.services import records_ingest
from monitoring.models import HourlyAggregate, Sketch
from monitoring.pipeline.aggregate import aggregates_refresh
from monitoring.pipeline.backfill import history_ranges
from monitoring.pipeline.join import outcomes_join
from tests.monitoring.pipeline.test_sketch_paths import assert_same, records, stored

pytestmark = pytest.mark.django_db(transaction=True)

COUNTS = ("version_id", "segment", "hour", "predictions", "labelled", "tp", "fp", "fn")


def counts(model) -> set[tuple]:
    return set(HourlyAggregate.objects.filter(model=model).values_list(*COUNTS))


def test_backfill_over_day_ranges_writes_what_the_job_writes(monkeypatch, capsys):
    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the ranges run here, in turn
    model = model_create(name="backfill", task="binary_classification", positive_class=1)
    predictions, outcomes = records(400)  # 400 predictions 7 minutes apart: two days and more
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    outcomes_join(model_id=model.pk)
    aggregates_refresh(model_id=model.pk)
    by_job, job_counts = stored(model), counts(model)
    Sketch.objects.filter(model=model).delete()
    HourlyAggregate.objects.filter(model=model).delete()

    call_command("aggregates_backfill", "--model", "backfill", "--days", "1")

    assert len(history_ranges(model.pk, 1)) == 3
    assert "backfill: 3 tasks of 1 day queued" in capsys.readouterr().out
    assert counts(model) == job_counts
    assert_same(by_job, stored(model))


def test_backfill_names_an_unknown_model():
    with pytest.raises(Exception, match="Unknown model 'nope'"):
        call_command("aggregates_backfill", "--model", "nope")
