"""Rules on realised metrics wait for mature windows: a bad day whose outcomes are still
arriving neither fires nor resolves an alert, and fires once enough of them are in."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
from freezegun import freeze_time

from monitoring.alerts.messages import email_render
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertEvaluation, AlertRule, Notification
from tests.conftest import NOW, outcome, prediction

pytestmark = pytest.mark.django_db
DAY0 = NOW.replace(hour=0) - timedelta(days=60)
BAD_DAY = 30


def traffic(*, seed: int = 11):
    """30 days of 60 predictions, 90% right; then a day of 300, half right. 90% of predictions
    get their outcome, 1 to 10 days later. Returns the predictions and (arrival, outcome)s."""
    rng = np.random.default_rng(seed)
    predictions, outcomes = [], []
    for day in range(BAD_DAY + 1):
        bad = day == BAD_DAY
        for j in range(300 if bad else 60):
            i = day * 1000 + j
            at = DAY0 + timedelta(days=day, seconds=float(rng.uniform(0, 86399)))
            predictions.append(prediction(i, at=at, prediction=1))
            if rng.random() < 0.9:
                seen = at + timedelta(days=float(rng.uniform(1, 10)))
                right = rng.random() < (0.5 if bad else 0.9)
                outcomes.append((seen, outcome(i, at=seen, outcome=int(right))))
    return predictions, outcomes


def arrive(model, outcomes, *, after, until):
    records = [record for seen, record in outcomes if after < seen <= until]
    records_ingest(model=model, kind="outcomes", records=records, enqueue_jobs=False)
    jobs_run(model_id=model.pk, now=until)


def test_an_immature_bad_day_waits_and_fires_once_its_outcomes_are_in(model):
    # given: a static rule on accuracy (the model's 80% maturity) and one that judges a window
    # once 10% of its expected outcomes are in
    waits = AlertRule.objects.create(
        model=model, metric="accuracy", kind="static", lower=0.8, min_count=20, repeat_minutes=0
    )
    eager = AlertRule.objects.create(
        model=model,
        metric="accuracy",
        kind="static",
        lower=0.8,
        min_count=20,
        repeat_minutes=0,
        label_maturity=0.1,
    )
    predictions, outcomes = traffic()
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    bad_day_end = DAY0 + timedelta(days=BAD_DAY + 1)
    # when: three days after the bad day, about a quarter of its outcomes have arrived
    early = bad_day_end + timedelta(days=3)
    arrive(model, outcomes, after=DAY0, until=early)
    # then: the bad day has enough labels to judge, but the default rule waits for it
    latest = AlertEvaluation.objects.filter(rule=waits).latest("evaluated_at")
    assert latest.window_end < bad_day_end - timedelta(days=1)  # an older, mature day
    assert not Alert.objects.filter(rule=waits).exists()
    # while the rule content with 10% of the outcomes fires on it, and its e-mail says that
    # the rest of the outcomes are still to come
    assert Alert.objects.get(rule=eager).window_end == bad_day_end
    told = Notification.objects.filter(alert__rule=eager, kind="firing")
    with freeze_time(early):
        text = email_render(list(told)).text
    found = re.search(
        r"(\d+)% of the window's expected outcomes are in; the rest arrive in "
        r"about (\d+) days, so the value may still move",
        text,
    )
    assert found and 10 <= int(found.group(1)) < 80
    assert 1 <= int(found.group(2)) <= 5
    # when: ten days later every outcome is in
    late = bad_day_end + timedelta(days=11)
    arrive(model, outcomes, after=early, until=late)
    # then: the default rule fires on that day too
    alert = Alert.objects.get(rule=waits)
    assert alert.direction == "too_low" and alert.window_end == bad_day_end
    assert alert.value == pytest.approx(0.5, abs=0.1)
