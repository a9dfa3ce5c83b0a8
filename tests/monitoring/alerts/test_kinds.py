"""Rule kinds in both directions: band, relative (trailing or another version), no_data; errors."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from scipy import stats

from monitoring.alerts.evaluate import rules_evaluate
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
from monitoring.models import Alert, AlertEvaluation, AlertRule
from tests.conftest import NOW, outcome, prediction

pytestmark = pytest.mark.django_db
DAY0 = NOW.replace(hour=0) - timedelta(days=20)


def traffic(model, day: int, *, n: int, correct: int, version: str = "1.0.0", ids: int = 0):
    """n labelled predictions on day `day` of one version, `correct` of them right."""
    at = DAY0 + timedelta(days=day, hours=6)
    first = ids + day * 10_000
    records_ingest(
        model=model,
        kind="predictions",
        enqueue_jobs=False,
        records=[
            prediction(i, at=at, prediction=1, model_version=version)
            for i in range(first, first + n)
        ],
    )
    records_ingest(
        model=model,
        kind="outcomes",
        enqueue_jobs=False,
        records=[
            outcome(i, at=at + timedelta(hours=1), outcome=int(i - first < correct))
            for i in range(first, first + n)
        ],
    )


def end_of_day(day: int):
    return DAY0 + timedelta(days=day + 1)


def rule(model, **fields):
    defaults = {"metric": "accuracy", "min_count": 20, "repeat_minutes": 0, "cooldown_minutes": 0}
    return AlertRule.objects.create(model=model, **{**defaults, **fields})


def wilson_se(successes: int, n: int) -> float:
    """Half the width of the 95% Wilson interval over z, computed here from SciPy's z."""
    z = stats.norm.ppf(0.975)
    p = successes / n
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return half / z


def test_band_fires_too_low_with_bounds_from_the_windows_standard_error(model, smtp_server):
    # given: five days at 0.9 accuracy, then a day at 0.8 over 400 labelled predictions
    band = rule(model, kind="band", k=3, baseline_windows=5)
    for day in range(5):
        traffic(model, day, n=400, correct=360)
    traffic(model, 5, n=400, correct=320)
    # when
    jobs_run(model_id=model.pk, now=end_of_day(5))
    # then: bounds are the baseline mean +- 3 standard errors of that window's interval
    alert = Alert.objects.get(rule=band)
    assert (alert.state, alert.direction, alert.value) == ("firing", "too_low", 0.8)
    se = wilson_se(320, 400)
    assert alert.lower == pytest.approx(0.9 - 3 * se, rel=1e-9)
    assert alert.upper == pytest.approx(0.9 + 3 * se, rel=1e-9)
    assert "too low" in smtp_server.messages[0][1]["Subject"]


def test_band_fires_too_high(model, smtp_server):
    band = rule(model, kind="band", k=3, baseline_windows=5)
    for day in range(5):
        traffic(model, day, n=400, correct=280)
    traffic(model, 5, n=400, correct=360)
    jobs_run(model_id=model.pk, now=end_of_day(5))
    alert = Alert.objects.get(rule=band)
    assert (alert.state, alert.direction) == ("firing", "too_high")


def test_band_accounts_for_window_size(model, smtp_server):
    # given: the same drop from 0.9 to 0.8 in a window of 30 (noise) ...
    band = rule(model, kind="band", k=3, baseline_windows=5)
    for day in range(5):
        traffic(model, day, n=400, correct=360)
    traffic(model, 5, n=30, correct=24)
    jobs_run(model_id=model.pk, now=end_of_day(5))
    # then it is inside the band, which is wide for 30 observations
    assert not Alert.objects.filter(rule=band).exists()
    assert AlertEvaluation.objects.filter(rule=band).latest("id").verdict == "ok"


def test_band_sides_too_low_only_ignores_a_rise(model, smtp_server):
    band = rule(model, kind="band", k=3, baseline_windows=5, sides="too_low")
    for day in range(5):
        traffic(model, day, n=400, correct=280)
    traffic(model, 5, n=400, correct=360)
    jobs_run(model_id=model.pk, now=end_of_day(5))
    assert not Alert.objects.filter(rule=band).exists()


def test_band_without_baseline_does_not_judge(model, smtp_server):
    band = rule(model, kind="band", k=3, baseline_windows=5)
    traffic(model, 0, n=400, correct=100)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    assert not Alert.objects.exists()
    assert AlertEvaluation.objects.get(rule=band).verdict == "no_baseline"


@pytest.mark.parametrize(("last_day", "direction"), [(150, "too_high"), (60, "too_low")])
def test_relative_to_the_trailing_mean_both_ways(model, smtp_server, last_day, direction):
    # given: 100 predictions a day for four days, then 150 (or 60); the line is 20% off
    relative = rule(model, metric="predictions", kind="relative", percent=20, baseline_windows=4)
    for day in range(4):
        traffic(model, day, n=100, correct=90)
    traffic(model, 4, n=last_day, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(4))
    alert = Alert.objects.get(rule=relative)
    assert alert.direction == direction
    assert (alert.lower, alert.upper) == (pytest.approx(80), pytest.approx(120))


def test_relative_to_another_version(model, smtp_server):
    # given: version 2.0.0 is 20 points less accurate than 1.0.0 on the same day
    relative = rule(model, kind="relative", percent=10, version="2.0.0", baseline_version="1.0.0")
    traffic(model, 0, n=200, correct=180, version="1.0.0")
    traffic(model, 0, n=200, correct=140, version="2.0.0", ids=5000)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    alert = Alert.objects.get(rule=relative)
    assert alert.direction == "too_low" and alert.value == pytest.approx(0.7)
    assert alert.lower == pytest.approx(0.9 * 0.9)


def test_no_data_fires_when_the_feed_goes_silent(model, smtp_server):
    silent = rule(model, metric="predictions", kind="no_data", min_count=10, resolve_windows=1)
    traffic(model, 0, n=50, correct=45)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    assert not Alert.objects.exists()
    # when a whole day passes with nothing
    jobs_run(model_id=model.pk, now=end_of_day(1))
    # then
    alert = Alert.objects.get(rule=silent)
    assert (alert.state, alert.direction, alert.n) == ("firing", "no_data", 0)
    assert metric_label("predictions") in smtp_server.messages[0][1]["Subject"]
    # and it resolves when predictions come back
    traffic(model, 2, n=50, correct=45)
    jobs_run(model_id=model.pk, now=end_of_day(2))
    alert.refresh_from_db()
    assert alert.state == "resolved"


def test_no_data_on_outcomes(model, smtp_server):
    silent = rule(model, metric="outcomes", kind="no_data", min_count=10)
    traffic(model, 0, n=50, correct=45)
    at = DAY0 + timedelta(days=1, hours=6)
    records_ingest(
        model=model,
        kind="predictions",
        enqueue_jobs=False,
        records=[prediction(i, at=at) for i in range(90_000, 90_050)],
    )
    jobs_run(model_id=model.pk, now=end_of_day(1))
    alert = Alert.objects.get(rule=silent)
    assert alert.direction == "no_data" and alert.window_start == DAY0 + timedelta(days=1)


def test_a_new_model_without_any_data_is_not_silent(model, smtp_server):
    rule(model, metric="predictions", kind="no_data", min_count=1)
    jobs_run(model_id=model.pk, now=end_of_day(3))
    assert not Alert.objects.exists() and not smtp_server.messages


def test_a_metric_that_cannot_be_computed_is_an_error_evaluation_not_an_alert(model):
    broken = rule(model, metric="roc_auc_not_here", kind="band", k=3)
    working = rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    evaluation = AlertEvaluation.objects.get(rule=broken)
    assert evaluation.verdict == "error" and "roc_auc_not_here" in evaluation.error
    assert not Alert.objects.filter(rule=broken).exists()
    assert Alert.objects.get(rule=working).state == "firing"


def test_every_evaluation_is_recorded(model):
    static = rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=45)
    traffic(model, 1, n=50, correct=10)
    rules_evaluate(model_id=model.pk, now=end_of_day(0))  # nothing aggregated yet
    jobs_run(model_id=model.pk, now=end_of_day(0))
    jobs_run(model_id=model.pk, now=end_of_day(1))
    rows = list(AlertEvaluation.objects.filter(rule=static).order_by("id"))
    assert [r.verdict for r in rows] == ["no_data", "ok", "too_low"]
    last = rows[-1]
    assert (last.value, last.n, last.lower, last.state) == (0.2, 50, 0.8, "firing")
    assert last.window_start == DAY0 + timedelta(days=1) and last.duration_ms > 0


def test_late_corrections_rejudge_a_breaching_window_back_to_good(model, smtp_server):
    # given: a day whose first labels say 0.6, and a firing static alert on it
    static = rule(model, kind="static", lower=0.8, resolve_windows=1)
    traffic(model, 0, n=50, correct=30)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    assert Alert.objects.get(rule=static).state == "firing"
    # when corrected outcomes arrive for that day, making 48 of 50 right
    records_ingest(
        model=model,
        kind="outcomes",
        enqueue_jobs=False,
        records=[outcome(i, at=end_of_day(3), outcome=1) for i in range(30, 48)],
    )
    jobs_run(model_id=model.pk, now=end_of_day(0) + timedelta(hours=2))
    # then the same window, judged again, resolves the alert with one message
    assert Alert.objects.get(rule=static).state == "resolved"
    assert "RESOLVED" in smtp_server.messages[-1][1]["Subject"]


def test_a_rule_created_through_the_api_fires_from_the_jobs(model, writer, smtp_server):
    created = writer.post(
        "/api/v1/models/churn/alert-rules",
        {"metric": "accuracy", "kind": "band", "k": 3, "baseline_windows": 5, "min_count": 20},
        format="json",
    )
    assert created.status_code == 201
    for day in range(5):
        traffic(model, day, n=400, correct=360)
    traffic(model, 5, n=400, correct=300)
    jobs_run(model_id=model.pk, now=end_of_day(5))
    alerts = writer.get("/api/v1/alerts?model=churn&state=firing").json()
    assert [(a["rule"], a["direction"]) for a in alerts] == [(created.json()["id"], "too_low")]


def test_evaluations_older_than_the_retention_are_pruned(model):
    static = rule(model, kind="static", lower=0.8)
    rules_evaluate(model_id=model.pk, now=end_of_day(0))
    rules_evaluate(model_id=model.pk, now=end_of_day(0) + timedelta(days=31))
    (kept,) = AlertEvaluation.objects.filter(rule=static)
    assert kept.evaluated_at == end_of_day(0) + timedelta(days=31)
