"""Static alert rules: judged per window, two-sided, told once by e-mail, and resolved."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
from monitoring.models import Alert, AlertRule, Notification
from tests.conftest import NOW, free_port, outcome, prediction

pytestmark = pytest.mark.django_db
DAY0 = NOW.replace(hour=0) - timedelta(days=10)


def day_of_traffic(model, day: int, *, n: int = 50, correct: int = 45, start_id: int = 0):
    """n labelled predictions on day `day`, `correct` of them right."""
    at = DAY0 + timedelta(days=day, hours=6)
    ids = range(start_id + day * 1000, start_id + day * 1000 + n)
    records_ingest(
        model=model,
        kind="predictions",
        enqueue_jobs=False,
        records=[prediction(i, at=at, prediction=1) for i in ids],
    )
    records_ingest(
        model=model,
        kind="outcomes",
        enqueue_jobs=False,
        records=[
            outcome(i, at=at + timedelta(hours=1), outcome=int(k < correct))
            for k, i in enumerate(ids)
        ],
    )


def end_of_day(day: int):
    return DAY0 + timedelta(days=day + 1)


def static_rule(model, **fields):
    defaults = {"metric": "accuracy", "kind": "static", "lower": 0.8, "min_count": 20}
    return AlertRule.objects.create(model=model, **{**defaults, **fields})


def test_a_breach_fires_one_email_and_its_recovery_one_more(model, smtp_server):
    # given: two good days, then a bad one (reminders off: a test of their own below)
    static_rule(model, repeat_minutes=0)
    day_of_traffic(model, 0)
    day_of_traffic(model, 1)
    jobs_run(model_id=model.pk, now=end_of_day(1))
    assert not Alert.objects.exists()
    day_of_traffic(model, 2, correct=30)
    # when
    jobs_run(model_id=model.pk, now=end_of_day(2))
    jobs_run(model_id=model.pk, now=end_of_day(2))  # again: nothing new
    # then
    alert = Alert.objects.get()
    assert (alert.state, alert.direction, alert.value, alert.n) == ("firing", "too_low", 0.6, 50)
    assert len(smtp_server.messages) == 1
    recipients, message = smtp_server.messages[0]
    assert recipients == ["oncall@example.com"]
    assert "churn" in message["Subject"] and metric_label("accuracy") in message["Subject"]
    assert "too low" in message["Subject"] and "0.6000" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "http://127.0.0.1:8000/models/churn/?granularity=day#metric-accuracy" in text
    assert "n = 50" in text
    # when the next day is fine again: hysteresis keeps it firing for one good day
    day_of_traffic(model, 3)
    jobs_run(model_id=model.pk, now=end_of_day(3))
    alert.refresh_from_db()
    assert alert.state == "firing" and len(smtp_server.messages) == 1
    # and resolves it on the second good day in a row (resolve_windows = 2)
    day_of_traffic(model, 4)
    jobs_run(model_id=model.pk, now=end_of_day(4))
    jobs_run(model_id=model.pk, now=end_of_day(4))
    # then
    alert.refresh_from_db()
    assert alert.state == "resolved" and alert.resolved_at == end_of_day(4)
    assert len(smtp_server.messages) == 2
    assert "RESOLVED" in smtp_server.messages[1][1]["Subject"]


def test_too_high_fires_too(model, smtp_server):
    static_rule(model, metric="predictions", lower=None, upper=100)
    day_of_traffic(model, 0, n=150, correct=150)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    alert = Alert.objects.get()
    assert alert.direction == "too_high" and alert.value == 150
    assert "too high" in smtp_server.messages[0][1]["Subject"]


def test_windows_under_min_count_are_not_judged(model, smtp_server):
    static_rule(model, min_count=100)
    day_of_traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    assert not Alert.objects.exists() and not smtp_server.messages


def test_for_windows_keeps_an_alert_pending_until_enough_windows_breach(model, smtp_server):
    static_rule(model, for_windows=2)
    day_of_traffic(model, 0, correct=30)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    assert Alert.objects.get().state == "pending" and not smtp_server.messages
    day_of_traffic(model, 1, correct=30)
    jobs_run(model_id=model.pk, now=end_of_day(1))
    assert Alert.objects.get().state == "firing" and len(smtp_server.messages) == 1


def test_late_outcomes_rejudge_a_window(model, smtp_server):
    # given: a day whose first labels are good, and a firing alert on the day after
    static_rule(model)
    day_of_traffic(model, 0, correct=48)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    assert not Alert.objects.exists()
    # when corrections arrive for that same day, turning it bad
    at = DAY0 + timedelta(days=5)
    records_ingest(
        model=model,
        kind="outcomes",
        enqueue_jobs=False,
        records=[outcome(i, at=at, outcome=0) for i in range(0, 20)],
    )
    jobs_run(model_id=model.pk, now=end_of_day(0) + timedelta(hours=1))
    # then
    alert = Alert.objects.get()
    assert alert.state == "firing" and alert.window_start == DAY0


def test_smtp_down_then_up_delivers_the_notification(model, settings):
    from aiosmtpd.controller import Controller

    from tests.conftest import Inbox

    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    static_rule(model)
    day_of_traffic(model, 0, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    notification = Notification.objects.get()
    assert notification.sent_at is None and "Connection" in notification.error
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        Notification.objects.update(claimed_until=None)  # the retry delay has passed
        jobs_run(model_id=model.pk, now=end_of_day(0))
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    notification.refresh_from_db()
    assert notification.sent_at is not None and notification.attempts == 2


def test_alert_rules_api(model, writer):
    url = "/api/v1/models/churn/alert-rules"
    created = writer.post(
        url, {"metric": "accuracy", "kind": "static", "lower": 0.7}, format="json"
    )
    assert created.status_code == 201
    rule = created.json()
    assert rule["id"] and rule["min_count"] == 100 and rule["granularity"] == "day"
    assert writer.get(url).json()[0]["id"] == rule["id"]
    patched = writer.patch(f"{url}/{rule['id']}", {"upper": 0.99}, format="json")
    assert patched.status_code == 200 and patched.json()["upper"] == 0.99
    assert writer.delete(f"{url}/{rule['id']}").status_code == 204
    assert not AlertRule.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metric": "accuracy", "kind": "static"}, "lower"),
        ({"metric": "accurasy", "kind": "static", "lower": 1}, "metric"),
        ({"metric": "accuracy", "kind": "static", "lower": 0.9, "upper": 0.5}, "upper"),
        ({"kind": "static", "lower": 1}, "metric"),
    ],
)
def test_alert_rules_api_rejects_bad_rules_with_the_field(model, writer, body, field):
    response = writer.post("/api/v1/models/churn/alert-rules", body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


def test_alerts_api_lists_them(model, writer, smtp_server):
    static_rule(model)
    day_of_traffic(model, 0, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    alerts = writer.get("/api/v1/alerts?model=churn&state=firing").json()
    assert len(alerts) == 1
    assert alerts[0]["direction"] == "too_low" and alerts[0]["notified"] is True
    assert alerts[0]["metric"] == "accuracy" and alerts[0]["model"] == "churn"
    assert writer.get("/api/v1/alerts?state=resolved").json() == []
    assert writer.get("/api/v1/alerts?state=bogus").status_code == 400
