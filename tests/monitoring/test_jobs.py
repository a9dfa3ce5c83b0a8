from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from monitoring.ingest.services import records_ingest
from monitoring.models import HourlyAggregate, Label
from tests.conftest import outcome, prediction

pytestmark = pytest.mark.django_db


def test_run_jobs_joins_and_aggregates_in_the_foreground(model):
    records_ingest(model=model, kind="predictions", records=[prediction(1)], enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=[outcome(1)], enqueue_jobs=False)
    out = StringIO()
    call_command("run_jobs", "--model", "churn", stdout=out)
    assert "churn: 1 labels joined, 1 hours aggregated" in out.getvalue()
    assert Label.objects.count() == 1
    assert HourlyAggregate.objects.get().labelled == 1


def test_run_jobs_refuses_an_unknown_model(db):
    with pytest.raises(CommandError, match="Unknown model 'nope'"):
        call_command("run_jobs", "--model", "nope")
