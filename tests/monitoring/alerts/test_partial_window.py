"""A window not over yet is never judged: neither a bad day so far nor a quiet one (its
predictions still arriving) opens an alert before the day ends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.alerts.judge import rule_judgements
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


def test_the_first_day_of_a_model_that_began_mid_day_is_not_a_fall_in_volume(model):
    # given: a rule on the daily count, a model whose first predictions came at 06:00
    # (its first day holds them alone) and a whole day of the same traffic after it
    AlertRule.objects.create(
        model=model, metric="predictions", kind="static", lower=60, min_count=1
    )
    day_of_traffic(model, 0, n=40)
    day_of_traffic(model, 1, n=40, start_id=100)
    day_of_traffic(model, 1, n=40, start_id=200)  # 80 on the first whole day
    # when: both days are over
    jobs_run(model_id=model.pk, now=end_of_day(1))
    # then: the part-day is left out of the verdicts, the whole day judged
    assert not Alert.objects.exists()
    (judged,) = AlertEvaluation.objects.all()
    assert judged.window_end == end_of_day(1)
    # a rate is judged on the rows it has, the first day's too
    judged = rule_judgements(static_rule(model), now=end_of_day(1))
    assert [j.end for j in judged if j.judged] == [end_of_day(0), end_of_day(1)]


def test_a_part_day_already_over_an_upper_bound_on_a_count_is_judged(model):
    # given: 80 predictions in the first hours of the model's first day, 60 at most allowed
    AlertRule.objects.create(
        model=model, metric="predictions", kind="static", upper=60, min_count=1
    )
    day_of_traffic(model, 0, n=80)
    # when
    jobs_run(model_id=model.pk, now=end_of_day(0))
    # then: the rest of the day can only add to the count, so it is too high already
    assert Alert.objects.get().direction == "too_high"
