"""A window not over yet is never judged: neither a bad day so far nor a quiet one (its
predictions still arriving) opens an alert before the day ends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertEvaluation, AlertRule
from tests.monitoring.alerts.test_static import day_of_traffic, end_of_day, static_rule

pytestmark = pytest.mark.django_db


def test_a_bad_day_so_far_is_judged_only_once_it_ends(model):
    static_rule(model, repeat_minutes=0)
    day_of_traffic(model, 0)
    day_of_traffic(model, 1)
    day_of_traffic(model, 2, correct=20)  # 40% right, its hour at 06:00 aggregated by noon
    jobs_run(model_id=model.pk, now=end_of_day(1) + timedelta(hours=12))
    assert not Alert.objects.exists()
    judged = AlertEvaluation.objects.get()
    assert judged.window_end == end_of_day(1)  # the last complete day, not today so far
    jobs_run(model_id=model.pk, now=end_of_day(2))
    assert Alert.objects.get().window_end == end_of_day(2)


def test_a_day_with_few_predictions_so_far_is_not_an_outage(model):
    AlertRule.objects.create(
        model=model, metric="predictions", kind="no_data", granularity="day", min_count=30
    )
    day_of_traffic(model, 0)
    day_of_traffic(model, 1, n=10)  # ten by 06:00, the day not over yet
    jobs_run(model_id=model.pk, now=end_of_day(0) + timedelta(hours=7))
    assert not Alert.objects.exists()
    jobs_run(model_id=model.pk, now=end_of_day(1))  # the day ended with ten: now it is quiet
    assert Alert.objects.get().direction == "no_data"
