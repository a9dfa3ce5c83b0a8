"""A firing alert that changes direction, bounds clipped to what a metric can take, and the
default rules of each task."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
from scipy import stats

from factory.models import MLModel
from monitoring.alerts.defaults import alert_rules_default_create
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
from monitoring.models import Alert, AlertEvaluation, AlertRule, Notification
from tests.monitoring.alerts.email_parts import (
    LINE_RGB,
    bodies,
    dashed_rows,
    inline_images,
    near,
    png_pixels,
)
from tests.monitoring.alerts.test_kinds import DAY0, end_of_day, rule, traffic, wilson_se

pytestmark = pytest.mark.django_db


def test_a_firing_alert_that_turns_too_high_is_told_once_with_its_run(model, smtp_server):
    # given: accuracy must stay within [0.5, 0.9]; day 0 is far below
    both = rule(model, kind="static", lower=0.5, upper=0.9, resolve_windows=2)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    assert len(smtp_server.messages) == 1
    assert "too low" in smtp_server.messages[0][1]["Subject"]
    # and a second rule that first breaches on day 1
    ceiling = rule(model, kind="static", upper=0.95)
    # when: day 1 jumps above the upper bound
    traffic(model, 1, n=50, correct=49)
    jobs_run(model_id=model.pk, now=end_of_day(1))
    # then: the alert stays the same open alert, now too high
    alert = Alert.objects.get(rule=both)
    assert (alert.state, alert.direction, alert.value) == ("firing", "too_high", 0.98)
    # and one message tells both changes of that run: the flip and the new alert
    assert len(smtp_server.messages) == 2
    _, message = smtp_server.messages[1]
    text, html = bodies(message)
    assert "2 alert changes" in message["Subject"]
    changed = f"Changed direction (warning): {metric_label('accuracy')} of churn is now too high"
    assert changed in text and changed in html
    assert Alert.objects.get(rule=ceiling).state == "firing"
    # when the same day is evaluated again, nothing more is sent
    jobs_run(model_id=model.pk, now=end_of_day(1) + timedelta(minutes=15))
    assert len(smtp_server.messages) == 2
    firing = Notification.objects.filter(alert=alert, kind="firing", channel="email")
    assert sorted(firing.values_list("sequence", flat=True)) == [0, 1]
    # and when it goes back inside for two days, one resolved message follows
    for day in (2, 3):
        traffic(model, day, n=50, correct=35)
        jobs_run(model_id=model.pk, now=end_of_day(day))
    alert.refresh_from_db()
    assert alert.state == "resolved"
    told = Notification.objects.filter(alert=alert, kind="resolved", sent_at__isnull=False)
    assert told.count() == 1
    assert len(smtp_server.messages) == 3  # both rules' resolutions in one message
    assert f"Resolved: {metric_label('accuracy')} of churn" in bodies(smtp_server.messages[2][1])[0]


def test_a_band_on_a_proportion_is_clipped_to_one_in_records_and_e_mail(model, smtp_server):
    # given: accuracy near 0.975 over small windows, so baseline + 4 standard errors > 1
    band = rule(model, kind="band", k=4, baseline_windows=5)
    for day in range(5):
        traffic(model, day, n=40, correct=39)
    traffic(model, 5, n=40, correct=20)
    # when
    jobs_run(model_id=model.pk, now=end_of_day(5))
    # then: the upper bound is 1 (not 0.975 + 4 * 0.077), the lower one as computed
    alert = Alert.objects.get(rule=band)
    assert alert.direction == "too_low" and alert.upper == 1.0
    assert alert.lower == pytest.approx(0.975 - 4 * wilson_se(20, 40), rel=1e-9)
    assert 0.975 + 4 * wilson_se(20, 40) > 1  # the band as computed did overshoot
    evaluation = AlertEvaluation.objects.filter(rule=band).latest("evaluated_at")
    assert evaluation.upper == 1.0
    text, html = bodies(smtp_server.messages[0][1])
    assert "upper 1.0000" in text and "upper 1.0000" in html
    # the sparkline draws both bounds, dashed, within the picture
    (png,) = inline_images(smtp_server.messages[0][1]).values()
    pixels = png_pixels(png)
    assert len(dashed_rows(pixels)) == 2
    assert all(0 < row < pixels.shape[0] - 2 for row in dashed_rows(pixels))  # not cut off


def test_a_band_on_a_count_never_shows_a_negative_lower_bound(model, smtp_server):
    # given: a band on the daily number of predictions, with a wide k
    band = rule(model, metric="predictions", kind="band", k=4, baseline_windows=5, min_count=1)
    for day in range(5):
        traffic(model, day, n=20, correct=10)
    traffic(model, 5, n=400, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(5))
    alert = Alert.objects.get(rule=band)
    # 20 - 4 * sqrt(400) is below zero: shown as 0
    assert alert.direction == "too_high" and alert.lower == 0.0


EXPECTED_DEFAULTS = {
    # and the estimated headline, which moves before any outcome arrives
    "binary_classification": {"roc_auc", "accuracy", "positive_rate", "estimated:roc_auc"},
    "multiclass_classification": {"accuracy", "macro_f1", "mean_score", "estimated:accuracy"},
    "regression": {"mae", "mean_prediction", "estimated:mae"},
}


@pytest.mark.parametrize("task", sorted(EXPECTED_DEFAULTS))
def test_every_task_gets_two_sided_bands_on_its_headline_metrics(writer, task):
    answer = writer.post("/api/v1/models", {"name": "m", "task": task}, format="json")
    assert answer.status_code == 201, answer.json()
    rules = writer.get("/api/v1/models/m/alert-rules").json()
    bands = {r["metric"] for r in rules if r["kind"] == "band"}
    assert bands == EXPECTED_DEFAULTS[task]
    assert all(r["sides"] == "both" and r["k"] == 4 for r in rules if r["kind"] == "band")
    no_data = [(r["metric"], r["kind"]) for r in rules if r["kind"] != "band"]
    assert no_data == [("predictions", "no_data")]
    assert all(r["is_default"] for r in rules)


def test_a_multiclass_models_default_fires_when_its_confidence_falls(smtp_server):
    # given: a three-class model whose mean confidence falls from 0.85 to 0.55 on day 5
    model = MLModel.objects.create(
        name="topics", task="multiclass_classification", on_call=["oncall@example.com"]
    )
    alert_rules_default_create(model=model)
    rng = np.random.default_rng(3)
    days = {day: rng.uniform(0.75, 0.95, 150) for day in range(5)}
    days[5] = rng.uniform(0.45, 0.65, 150)
    for day, scores in days.items():
        at = DAY0 + timedelta(days=day, hours=6)
        records_ingest(
            model=model,
            kind="predictions",
            enqueue_jobs=False,
            records=[
                {
                    "prediction_id": f"{day}-{i}",
                    "timestamp": at.isoformat(),
                    "model_version": "1",
                    "prediction": "abc"[i % 3],
                    "score": float(s),
                }
                for i, s in enumerate(scores)
            ],
        )
    # when
    jobs_run(model_id=model.pk, now=end_of_day(5))
    # then: the mean_score band fires too low, with bounds from the window's standard error
    alert = Alert.objects.get(rule__metric="mean_score")
    assert (alert.state, alert.direction) == ("firing", "too_low")
    assert alert.value == pytest.approx(np.mean(days[5]))
    baseline = np.mean([np.mean(days[d]) for d in range(5)])
    standard_error = stats.sem(days[5])
    assert alert.lower == pytest.approx(baseline - 4 * standard_error, rel=1e-3)
    assert AlertRule.objects.get(model=model, metric="mean_score").is_default
    assert f"topics: {metric_label('mean_score')} too low" in smtp_server.messages[0][1]["Subject"]


def test_the_e_mail_tells_everything_in_text_and_html_with_a_sparkline_and_link(model, smtp_server):
    # given: five good days of accuracy, then a bad one
    static = rule(model, kind="static", lower=0.8)
    for day in range(5):
        traffic(model, day, n=50, correct=45)
    traffic(model, 5, n=50, correct=20)
    # when
    jobs_run(model_id=model.pk, now=end_of_day(5))
    # then both parts say model, metric, direction, value against bounds, n, window, rule
    ((_, message),) = smtp_server.messages
    text, html = bodies(message)
    window = f"{end_of_day(4):%Y-%m-%d %H:%M} to {end_of_day(5):%Y-%m-%d %H:%M} UTC (day)"
    for part in (text, html):
        assert "churn" in part and metric_label("accuracy") in part and "too low" in part
        assert "0.4000" in part and "lower 0.8000" in part and "n = 50" in part
        assert window in part and f"static #{static.pk}" in part
    link = "http://127.0.0.1:8000/models/churn/?granularity=day#metric-accuracy"
    assert f"Chart: {link}" in text and f'href="{link}"' in html
    # the sparkline: a PNG inside the message, shown by cid, no SVG and no image host
    assert "<svg" not in html
    ((cid, png),) = inline_images(message).items()
    assert re.findall(r'<img [^>]*src="([^"]+)"', html) == [f"cid:{cid}"]
    pixels = png_pixels(png)
    assert pixels.shape == (96, 480, 3)  # twice its shown 240 x 48, for dense screens
    (bound_row,) = dashed_rows(pixels)
    # the lowest point is the bad day, the last one, drawn at the bottom, below the bound
    line_rows, line_cols = np.nonzero(near(pixels, LINE_RGB))
    lowest = line_cols[line_rows == line_rows.max()]
    assert lowest.min() > pixels.shape[1] * 0.9 and line_rows.max() > bound_row


def test_a_change_of_direction_reaches_the_webhook_as_slack_text(
    model, smtp_server, outbound_private
):
    from monitoring.models import WebhookEndpoint
    from tests.monitoring.alerts.test_channels import Receiver

    receiver = Receiver()
    try:
        WebhookEndpoint.objects.create(model=model, url=receiver.url)
        rule(model, kind="static", lower=0.5, upper=0.9)
        traffic(model, 0, n=50, correct=10)
        jobs_run(model_id=model.pk, now=end_of_day(0))
        traffic(model, 1, n=50, correct=49)
        jobs_run(model_id=model.pk, now=end_of_day(1))
    finally:
        receiver.stop()
    fired, changed = receiver.bodies
    assert fired["alerts"][0]["direction"] == "too_low"
    assert not fired["alerts"][0]["changed_direction"]
    assert changed["alerts"][0]["direction"] == "too_high"
    assert changed["alerts"][0]["changed_direction"] is True
    label = metric_label("accuracy")
    assert f"Changed direction (warning): {label} of churn is now too high" in changed["text"]
