"""Lifecycle: no flapping, cooldown, reminders, acknowledge, silences, grouping, concurrency."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from freezegun import freeze_time

from accounts.roles import Role, user_role_set
from monitoring.alerts.notify import notifications_send
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
from monitoring.models import Alert, AlertRule, Notification
from monitoring.tasks import jobs_run_model
from tests.conftest import NOW, need_service, outcome, prediction
from tests.monitoring.alerts.email_parts import inline_images
from tests.monitoring.alerts.test_kinds import DAY0, end_of_day, rule, traffic

pytestmark = pytest.mark.django_db
HOUR0 = NOW.replace(hour=0) - timedelta(days=2)


def hour_traffic(model, hour: int, *, n: int = 40, correct: int = 36):
    at = HOUR0 + timedelta(hours=hour, minutes=10)
    first = 500_000 + hour * 1000
    records_ingest(
        model=model,
        kind="predictions",
        enqueue_jobs=False,
        records=[prediction(i, at=at) for i in range(first, first + n)],
    )
    records_ingest(
        model=model,
        kind="outcomes",
        enqueue_jobs=False,
        records=[
            outcome(i, at=at + timedelta(minutes=5), outcome=int(i - first < correct))
            for i in range(first, first + n)
        ],
    )


def test_a_metric_oscillating_across_the_line_fires_once_and_resolves_once(model, smtp_server):
    # given: hourly accuracy alternating 0.6 / 0.9 across a 0.8 line for twelve hours,
    # evaluated every 15 minutes
    static = rule(model, kind="static", lower=0.8, granularity="hour", cooldown_minutes=240)
    for hour in range(12):
        hour_traffic(model, hour, correct=24 if hour % 2 == 0 else 36)
        for quarter in range(1, 5):
            jobs_run(model_id=model.pk, now=HOUR0 + timedelta(hours=hour, minutes=15 * quarter))
    # then: it fired once and never flapped
    assert Alert.objects.filter(rule=static).count() == 1
    assert [m["Subject"].startswith("[Canary] churn") for _, m in smtp_server.messages] == [True]
    # when two good hours in a row follow
    for hour in (12, 13):
        hour_traffic(model, hour)
        jobs_run(model_id=model.pk, now=HOUR0 + timedelta(hours=hour + 1))
    # then: one resolved message, and only one
    assert Alert.objects.get(rule=static).state == "resolved"
    assert len(smtp_server.messages) == 2 and "RESOLVED" in smtp_server.messages[1][1]["Subject"]


def test_cooldown_keeps_a_new_breach_pending(model, smtp_server):
    static = rule(model, kind="static", lower=0.8, resolve_windows=1, cooldown_minutes=48 * 60)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    traffic(model, 1, n=50, correct=45)
    jobs_run(model_id=model.pk, now=end_of_day(1))
    assert Alert.objects.get(rule=static).state == "resolved"
    # when it breaches again one day after resolving
    traffic(model, 2, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(2))
    # then it waits; messages so far: fired, resolved
    assert Alert.objects.filter(rule=static, state="pending").exists()
    assert len(smtp_server.messages) == 2
    # and fires once the cooldown is over and the breach goes on
    traffic(model, 3, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(3))
    assert Alert.objects.get(rule=static, state="firing")
    assert len(smtp_server.messages) == 3


def test_reminders_repeat_while_firing_until_acknowledged(model, smtp_server, writer):
    rule(model, kind="static", lower=0.8, repeat_minutes=12 * 60)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    jobs_run(model_id=model.pk, now=end_of_day(0) + timedelta(hours=6))  # too soon
    assert len(smtp_server.messages) == 1
    jobs_run(model_id=model.pk, now=end_of_day(0) + timedelta(hours=12))
    assert len(smtp_server.messages) == 2
    assert "STILL FIRING" in smtp_server.messages[1][1]["Subject"]
    # when on-call acknowledges it
    alert = Alert.objects.get()
    answer = writer.post(f"/api/v1/alerts/{alert.pk}/acknowledge", {"by": "ana"}, format="json")
    assert answer.status_code == 200 and answer.json()["acknowledged_by"] == "ana"
    jobs_run(model_id=model.pk, now=end_of_day(0) + timedelta(hours=36))
    # then no more reminders, and it is still open
    assert len(smtp_server.messages) == 2
    assert Alert.objects.get().state == "firing"


def test_a_silence_holds_messages_until_it_ends(model, smtp_server, writer):
    static = rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    with freeze_time(end_of_day(0)):
        jobs_run(model_id=model.pk, now=end_of_day(0))
        alert = Alert.objects.get()
        until = (end_of_day(0) + timedelta(days=2)).isoformat()
        answer = writer.post(
            f"/api/v1/alerts/{alert.pk}/silence",
            {"until": until, "reason": "migration"},
            format="json",
        )
        assert answer.status_code == 200 and answer.json()["silence_reason"] == "migration"
    assert len(smtp_server.messages) == 1  # told before the silence
    # a new breach during the silence: recorded, not told
    Alert.objects.update(state="resolved", resolved_at=end_of_day(0))
    jobs_run(model_id=model.pk, now=end_of_day(1))
    assert Alert.objects.get(rule=static, state="firing")
    assert len(smtp_server.messages) == 1
    # after the silence, still firing: told
    jobs_run(model_id=model.pk, now=end_of_day(3))
    assert len(smtp_server.messages) == 2


def test_silence_rejects_a_past_time_with_a_problem(model, writer):
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    alert = Alert.objects.get()
    answer = writer.post(
        f"/api/v1/alerts/{alert.pk}/silence",
        {"until": "2020-01-01T00:00:00Z", "reason": "x"},
        format="json",
    )
    assert answer.status_code == 400 and answer["Content-Type"] == "application/problem+json"
    assert writer.post("/api/v1/alerts/999/acknowledge", {}, format="json").status_code == 404


def test_five_breaches_in_one_run_make_one_email(model, smtp_server):
    metrics = ["accuracy", "predictions", "mean_score", "label_coverage", "value:revenue"]
    for metric in metrics:
        rule(model, metric=metric, kind="static", lower=1e6)
    day_at = DAY0  # from the day's first hour: a whole day, judged on its counts too
    records_ingest(
        model=model,
        kind="predictions",
        enqueue_jobs=False,
        records=[prediction(i, at=day_at) for i in range(30)],
    )
    records_ingest(
        model=model,
        kind="outcomes",
        enqueue_jobs=False,
        records=[outcome(i, at=day_at, values={"revenue": 10.0}) for i in range(30)],
    )
    jobs_run(model_id=model.pk, now=end_of_day(0))
    assert Alert.objects.filter(state="firing").count() == 5
    assert len(smtp_server.messages) == 1
    message = smtp_server.messages[0][1]
    assert "5 alert changes" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert all(f"{metric_label(metric)} of churn is too low" in text for metric in metrics)
    html = message.get_body(("html",)).get_content()
    # a chart per alert inside the message, shown by cid; nothing from an outside host
    charts = inline_images(message)
    assert len(charts) == 5 and all(f'src="cid:{cid}"' in html for cid in charts)
    assert "<svg" not in html and 'src="http' not in html
    assert Notification.objects.filter(sent_at__isnull=False).count() == 5


@pytest.mark.django_db(transaction=True)
def test_two_evaluators_running_together_send_one_email(smtp_server):
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    from factory.services import model_create

    model = model_create(name="churn", task="binary_classification", on_call=["o@example.com"])
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0) - timedelta(days=1))  # join and aggregate
    barrier = threading.Barrier(4)
    errors = []

    def evaluator():
        try:
            barrier.wait()
            jobs_run(model_id=model.pk, now=end_of_day(0))
        except Exception as error:  # reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluator) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert Alert.objects.count() == 1 and Notification.objects.count() == 1
    assert len(smtp_server.messages) == 1


def test_smtp_failures_are_retried_with_backoff_then_given_up(model, settings):
    from tests.conftest import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nobody listens
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    notification = Notification.objects.get()
    delays = [(notification.claimed_until - timezone.now()).total_seconds()]
    for _ in range(4):
        Notification.objects.update(claimed_until=None)  # as if each backoff had passed
        notifications_send(model_id=model.pk)
        retry_at = Notification.objects.get().claimed_until
        delays.append((retry_at - timezone.now()).total_seconds())
    Notification.objects.update(claimed_until=None)
    assert notifications_send(model_id=model.pk) == 0  # no sixth attempt
    notification.refresh_from_db()
    assert notification.attempts == 5 and notification.sent_at is None
    assert "given up" in notification.error and "attempt 5" in notification.error
    # the wait doubles after each failure: 60 s, 120 s, 240 s, 480 s, 960 s
    assert [round(d / 60) for d in delays] == [1, 2, 4, 8, 16]


def test_a_message_given_up_during_an_outage_is_delivered_when_the_server_is_back(model, settings):
    from aiosmtpd.controller import Controller

    from tests.conftest import Inbox, free_port

    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port  # down: nobody listens
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    for _ in range(5):  # a long outage: every retry fails, the message is given up
        Notification.objects.update(claimed_until=None)
        notifications_send(model_id=model.pk)
    stranded = Notification.objects.get()
    assert stranded.attempts == 5 and "given up" in stranded.error
    # when the server is back and the next message (another rule's alert) goes through
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        rule(model, kind="static", upper=0.1)
        jobs_run(model_id=model.pk, now=end_of_day(0) + timedelta(minutes=5))
        assert len(inbox.messages) == 1
        notifications_send(model_id=model.pk)  # the next send, a minute later under beat
    finally:
        controller.stop()
    # then: the given-up message is delivered too, and only once
    stranded.refresh_from_db()
    assert stranded.sent_at is not None and stranded.error == ""
    assert len(inbox.messages) == 2
    assert f"{metric_label('accuracy')} too low" in inbox.messages[1][1]["Subject"]


def test_run_jobs_and_the_celery_task_evaluate_rules(model, smtp_server):
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    with freeze_time(end_of_day(0)):
        call_command("run_jobs", "--model", "churn")
    assert Alert.objects.get().state == "firing" and len(smtp_server.messages) == 1
    AlertRule.objects.create(
        model=model, metric="predictions", kind="static", upper=10, min_count=1, repeat_minutes=0
    )
    with freeze_time(end_of_day(0)):
        jobs_run_model.apply(args=[model.pk])
    assert Alert.objects.filter(state="firing").count() == 2
    assert len(smtp_server.messages) == 2


def test_the_model_page_acknowledges_and_silences_alerts(model, client, django_user_model):
    # given: a firing alert, and a person logged in to the dashboard
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    alert = Alert.objects.get()
    ana = django_user_model.objects.create_user("ana", password="x")
    user_role_set(user=ana, role=Role.EDITOR)  # silences are an editor's to set
    client.force_login(ana)
    page = client.get("/models/churn/").content.decode()
    assert "Acknowledge" in page and "Silence" in page
    # when they acknowledge it and silence its rule
    client.post(f"/models/churn/alerts/{alert.pk}/acknowledge")
    answer = client.post(
        f"/models/churn/alerts/{alert.pk}/silence",
        {"until": "2099-01-01T08:00", "reason": "deploy window"},
    )
    # then
    assert answer.status_code == 302
    alert.refresh_from_db()
    assert alert.acknowledged_by == "ana" and alert.rule.silence_reason == "deploy window"
    page = client.get("/models/churn/").content.decode()
    assert "acknowledged by ana" in page and "silenced until 2099-01-01 08:00" in page
    bad = client.post(f"/models/churn/alerts/{alert.pk}/silence", {"until": "x", "reason": "y"})
    assert bad.status_code == 400


def test_the_model_page_lists_an_alerts_latest_messages_and_counts_the_rest(
    model, smtp_server, client, django_user_model
):
    # given: an alert firing for five days, told once and then reminded every day
    rule(model, kind="static", lower=0.8, repeat_minutes=1440)
    for day in range(5):
        traffic(model, day, n=50, correct=10)
        jobs_run(model_id=model.pk, now=end_of_day(day))
    told = Alert.objects.get().notifications.count()
    assert told == 5
    # when someone opens the model page
    client.force_login(django_user_model.objects.create_user("ana", password="x"))
    page = client.get("/models/churn/").content.decode()
    # then one line says when it was first told and counts the reminders, not every message
    assert "told by e-mail" in page and f"{told - 1} reminders" in page
    assert "reminder by email" not in page


def test_reminders_piled_up_in_an_outage_go_out_as_one_message_counted_once(model, settings):
    from aiosmtpd.controller import Controller

    from monitoring.alerts.messages import messages_told
    from tests.conftest import Inbox, free_port

    # given: the mail server is down while an alert fires and two daily reminders fall due
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    rule(model, kind="static", lower=0.8, repeat_minutes=1440)
    for day in range(3):
        traffic(model, day, n=50, correct=10)
        jobs_run(model_id=model.pk, now=end_of_day(day))
    kinds = Notification.objects.order_by("id").values_list("kind", "sent_at")
    assert list(kinds) == [("firing", None), ("reminder", None), ("reminder", None)]
    # when it is back
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        Notification.objects.update(claimed_until=None)  # as if the backoff had passed
        sent = notifications_send(model_id=model.pk)
    finally:
        controller.stop()
    # then one message tells the firing alert, and is counted as one
    assert sent == 1 and len(inbox.messages) == 1
    message = inbox.messages[0][1]
    assert "STILL FIRING" not in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert text.count("Firing (warning)") == 1 and "Still firing" not in text
    # and the reminders it made redundant are settled as superseded, not counted as sent
    rows = {n.kind: n for n in Notification.objects.order_by("id")}
    states = [n.delivery_state(timezone.now()) for n in Notification.objects.order_by("id")]
    assert states == ["sent", "superseded", "superseded"]
    assert not rows["firing"].superseded
    told = messages_told(list(Notification.objects.all()), timezone.now())
    assert told == "firing sent by e-mail"


def test_told_counts_each_change_once_across_channels_and_reminders_as_reminders(model):
    from monitoring.alerts.messages import messages_told

    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    alert = Alert.objects.get()
    now = timezone.now()
    made = {"alert": alert, "created_at": now}
    Notification.objects.update(sent_at=now)
    for channel, target in (("email", ""), ("webhook", "https://hooks.example/x")):
        for sequence in (1, 2, 3):
            Notification.objects.create(
                **made,
                kind="reminder",
                channel=channel,
                target=target,
                sequence=sequence,
                sent_at=now,
            )
    Notification.objects.create(
        **made, kind="firing", channel="webhook", target="https://hooks.example/x", sent_at=now
    )
    Notification.objects.create(**made, kind="resolved", attempts=1, error="SMTP 451 later")
    told = messages_told(list(alert.notifications.all()), now)
    assert told == "firing and 3 reminders sent by e-mail and webhook; 1 failing"
