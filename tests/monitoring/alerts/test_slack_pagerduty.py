"""Slack and PagerDuty channels against real local HTTP receivers: what each is sent, and
PagerDuty's incident following the alert from trigger to acknowledge to resolve."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.alerts.links import alert_links
from monitoring.alerts.messages import alert_summary
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
from monitoring.models import Alert, Notification, WebhookEndpoint
from tests.conftest import outcome, prediction
from tests.monitoring.alerts.test_channels import receiver  # noqa: F401 (a fixture)
from tests.monitoring.alerts.test_email_content import SOUTH_DRIVER, regional_traffic
from tests.monitoring.alerts.test_kinds import end_of_day, rule, traffic

pytestmark = pytest.mark.django_db
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefabcdef"


def test_slack_gets_blocks_with_the_chart_link(model, smtp_server, receiver, writer):  # noqa: F811
    # given: a Slack channel set up through the API
    body = {"kind": "slack", "url": receiver.url}
    assert writer.post("/api/v1/models/churn/webhooks", body, format="json").status_code == 201
    rule(model, kind="static", lower=0.8, severity="critical")
    traffic(model, 0, n=50, correct=10)
    # when
    jobs_run(model_id=model.pk, now=end_of_day(0))
    # then: one message, in blocks: a header, the alert's words, buttons to its chart and page
    (message,) = receiver.bodies
    alert = Alert.objects.get()
    links = alert_links(alert, absolute=True)
    header, section, actions = message["blocks"]
    assert header["type"] == "header" and header["text"]["text"] == message["text"]
    assert message["text"].startswith("[Canary] CRITICAL churn: ")  # critical first
    text = section["text"]["text"]
    assert f"Firing (critical): {metric_label('accuracy')} of churn is too low" in text
    assert alert_summary(alert) in text
    urls = {button["text"]["text"]: button["url"] for button in actions["elements"]}
    assert urls["Open the chart"] == links.chart and urls["Alert page"] == links.page
    assert links.chart.startswith("http") and "#metric-accuracy" in links.chart
    # and the e-mail still goes; the Slack row is recorded as sent
    assert len(smtp_server.messages) == 1
    assert Notification.objects.get(channel="slack").sent_at is not None


def test_slack_escapes_what_its_markup_would_read(model, smtp_server, receiver):  # noqa: F811
    # given: a segment whose name is Slack markup (a mention of everyone, an entity)
    WebhookEndpoint.objects.create(model=model, kind="slack", url=receiver.url)
    segment = "<!channel> & co"
    rule(model, kind="static", lower=0.8, segment=segment)
    at = end_of_day(0) - timedelta(hours=12)
    records = [prediction(i, at=at, prediction=1, segment=segment) for i in range(50)]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    outcomes = [outcome(i, at=at, outcome=int(i < 10)) for i in range(50)]
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    (message,) = receiver.bodies
    text = message["blocks"][1]["text"]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; co" in text


def test_pagerduty_incident_follows_the_alert(model, smtp_server, receiver, writer):  # noqa: F811
    # given: a PagerDuty service set up through the API; its key is never answered back
    body = {"kind": "pagerduty", "url": receiver.url, "routing_key": ROUTING_KEY}
    created = writer.post("/api/v1/models/churn/webhooks", body, format="json")
    assert created.status_code == 201 and "routing_key" not in created.json()
    static = rule(model, kind="static", lower=0.8, resolve_windows=1, severity="critical")
    traffic(model, 0, n=50, correct=10)
    # when it fires: a trigger with the alert's dedup key, severity, summary and links
    jobs_run(model_id=model.pk, now=end_of_day(0))
    alert = Alert.objects.get(rule=static)
    (trigger,) = receiver.bodies
    key = f"canary-churn-alert-{alert.pk}"
    assert trigger["routing_key"] == ROUTING_KEY and trigger["dedup_key"] == key
    assert trigger["event_action"] == "trigger"
    payload = trigger["payload"]
    assert payload["severity"] == "critical" and payload["component"] == "churn"
    assert payload["summary"] == f"churn: {metric_label('accuracy')} too low"
    assert payload["custom_details"]["value"] == 0.2 and payload["custom_details"]["n"] == 50
    links = alert_links(alert, absolute=True)
    assert [link["href"] for link in trigger["links"]] == [links.chart, links.page]
    # when someone acknowledges it (through the API): an acknowledge with the same key
    answer = writer.post(f"/api/v1/alerts/{alert.pk}/acknowledge", {"by": "ana"}, format="json")
    assert answer.status_code == 200
    jobs_run(model_id=model.pk, now=end_of_day(0))
    assert receiver.bodies[1] == {
        "routing_key": ROUTING_KEY,
        "event_action": "acknowledge",
        "dedup_key": key,
    }
    # when the metric recovers: a resolve with the same key
    traffic(model, 1, n=50, correct=48)
    jobs_run(model_id=model.pk, now=end_of_day(1))
    assert receiver.bodies[2] == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": key,
    }
    # and e-mail got the firing and the resolved message, not the acknowledgement
    assert len(smtp_server.messages) == 2 and len(receiver.bodies) == 3


def test_pagerduty_acknowledgement_is_not_sent_when_it_was_never_triggered(model, receiver):  # noqa: F811
    WebhookEndpoint.objects.create(
        model=model, kind="pagerduty", url=receiver.url, routing_key=ROUTING_KEY
    )
    static = rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))  # no SMTP here: e-mail fails, PagerDuty not
    alert = Alert.objects.get(rule=static)
    Notification.objects.filter(channel="pagerduty").delete()  # as if it had been silenced
    from monitoring.alerts.services import alert_acknowledge

    assert alert_acknowledge(alert=alert, by="ana")
    assert not Notification.objects.filter(kind="acknowledged").exists()


def test_pagerduty_down_is_retried_and_the_events_keep_their_order(model, smtp_server, receiver):  # noqa: F811
    WebhookEndpoint.objects.create(
        model=model, kind="pagerduty", url=receiver.url, routing_key=ROUTING_KEY
    )
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    receiver.status = 503
    jobs_run(model_id=model.pk, now=end_of_day(0))
    row = Notification.objects.get(channel="pagerduty")
    assert row.sent_at is None and "HTTP 503" in row.error
    receiver.status = 200
    Notification.objects.update(claimed_until=None)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    assert [b["event_action"] for b in receiver.bodies] == ["trigger"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "pagerduty", "url": "https://events.example.com/v2/enqueue"}, "routing_key"),
        (
            {"kind": "slack", "url": "https://hooks.example.com/x", "routing_key": "k"},
            "routing_key",
        ),
        ({"kind": "teams", "url": "https://hooks.example.com/x"}, "kind"),
        ({"kind": "slack", "url": "http://127.0.0.1/x"}, "url"),
    ],
)
def test_bad_channels_are_refused_with_the_field(model, writer, body, field):
    answer = writer.post("/api/v1/models/churn/webhooks", body, format="json")
    assert answer.status_code == 400
    assert field in [error["field"] for error in answer.json()["errors"]]


def test_the_same_channel_twice_is_a_conflict(model, writer, outbound_private):
    body = {"kind": "pagerduty", "url": "http://127.0.0.1:9/enqueue", "routing_key": ROUTING_KEY}
    url = "/api/v1/models/churn/webhooks"
    assert writer.post(url, body, format="json").status_code == 201
    assert writer.post(url, body, format="json").status_code == 409
    other_service = {**body, "routing_key": ROUTING_KEY[::-1]}
    assert writer.post(url, other_service, format="json").status_code == 201


def test_slack_tells_many_alerts_within_its_block_limit(model, smtp_server, receiver):  # noqa: F811
    # given: twenty rules breached in the same run, told in one Slack message
    WebhookEndpoint.objects.create(model=model, kind="slack", url=receiver.url)
    for i in range(20):
        rule(model, kind="static", lower=0.8 + i / 1000)
    traffic(model, 0, n=50, correct=10)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    (message,) = receiver.bodies
    # then: at most 50 blocks (Slack's limit), the last one saying how many more there are
    assert len(message["blocks"]) <= 50
    assert "…and 5 more" in message["blocks"][-1]["elements"][0]["text"]


def test_the_webhook_and_slack_carry_the_top_drivers(model, smtp_server, receiver, writer):  # noqa: F811
    # given: a webhook and a Slack channel, and accuracy falling within region south only
    for kind in ("webhook", "slack"):
        body = {"kind": kind, "url": receiver.url}
        assert writer.post("/api/v1/models/churn/webhooks", body, format="json").status_code == 201
    rule(model, kind="static", lower=0.8)
    regional_traffic(model, -1, {"north": 180, "south": 180})
    regional_traffic(model, 0, {"north": 180, "south": 100})
    # when
    jobs_run(model_id=model.pk, now=end_of_day(0))
    # then: the webhook's alert carries the driver as data and in its text; Slack in its section
    webhook = next(b for b in receiver.bodies if "alerts" in b)
    slack = next(b for b in receiver.bodies if "blocks" in b)
    line = f"{SOUTH_DRIVER}, q < 0.001"
    assert webhook["alerts"][0]["drivers"] == [line]
    assert f"What drives it:\n- {line}" in webhook["text"]
    section = slack["blocks"][1]["text"]["text"]
    assert f"*What drives it*\n• {line.replace('<', '&lt;')}" in section
