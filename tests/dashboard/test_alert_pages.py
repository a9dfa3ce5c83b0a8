"""Alert list and alert page: what fired and why, its evaluations, its messages, acting on it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from monitoring.alerts.notify import MAX_ATTEMPTS
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
from monitoring.models import Alert, AlertEvaluation, AlertRule, Notification
from tests.conftest import outcome, prediction
from tests.monitoring.alerts.test_email_content import SOUTH_DRIVER, regional_traffic
from tests.monitoring.alerts.test_kinds import end_of_day, rule

pytestmark = pytest.mark.django_db
XSS = "<script>alert(1)</script>"


@pytest.fixture
def firing(model, settings):
    """Accuracy 2/3 against a static lower bound of 0.9: one firing alert, one e-mail sent."""
    settings.CANARY_BASE_URL = "http://testserver"
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    records = [prediction(i, at=now - timedelta(hours=i), segment=XSS) for i in range(120)]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    labels = [outcome(i, at=now, outcome=int(i % 3 > 0)) for i in range(100)]
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    AlertRule.objects.create(
        model=model, metric="accuracy", kind="static", lower=0.9, min_count=5, granularity="day"
    )
    jobs_run(model_id=model.pk)
    return Alert.objects.get()


def alert_url(alert: Alert) -> str:
    return f"/models/churn/alerts/{alert.pk}/"


def test_the_list_shows_open_alerts_and_filters(firing, viewer):
    html = viewer.get("/alerts/").content.decode()
    assert "1 alert open" in html and alert_url(firing) in html
    assert "too low" in html and "firing sent by e-mail" in html
    Alert.objects.update(state="resolved", resolved_at=timezone.now())
    assert alert_url(firing) not in viewer.get("/alerts/").content.decode()
    resolved = viewer.get("/alerts/", {"state": "resolved", "model": "churn"}).content.decode()
    assert alert_url(firing) in resolved
    assert viewer.get("/alerts/", {"state": "sleeping"}).status_code == 400
    assert viewer.get("/alerts/", {"model": "nope"}).status_code == 400


def test_the_alert_page_explains_the_alert(firing, viewer):
    html = viewer.get(alert_url(firing)).content.decode()
    window = firing.window_start
    sentence = (
        f"{metric_label('accuracy')} of churn was {firing.value:.4g} over n = {firing.n:,} "
        "in the day from "
        f"{window:%Y-%m-%d %H:%M}"
    )
    assert sentence in html and "below its lower bound 0.9" in html
    assert f"fires when {metric_label('accuracy')} is below 0.9" in html
    # The chart around it, titled, with axes and the bound it was judged against.
    assert 'id="alert-' in html and "Accuracy per day, rule #" in html
    assert '"name": "lower bound"' in html
    link = re.search(r'id="chart-link" href="([^"]+)"', html).group(1)
    assert link.endswith("#metric-accuracy") and "granularity=day" in link


def test_the_alert_page_lists_what_drives_it(model, viewer):
    # given: accuracy falls within region south only (see the e-mail's test)
    rule(model, kind="static", lower=0.8)
    regional_traffic(model, -1, {"north": 180, "south": 180})
    regional_traffic(model, 0, {"north": 180, "south": 100})
    jobs_run(model_id=model.pk, now=end_of_day(0))
    # when
    html = viewer.get(alert_url(Alert.objects.get())).content.decode()
    # then: the same driver the e-mail carries, under the summary
    drivers = re.search(r'<div id="drivers">(.*?)</div>', html, re.S).group(1)
    assert re.findall(r"<li>(.*?)</li>", drivers) == [f"{SOUTH_DRIVER}, q &lt; 0.001"]


def test_an_alert_with_no_slice_to_single_out_lists_no_drivers(firing, viewer):
    html = viewer.get(alert_url(firing)).content.decode()
    assert 'id="drivers"' not in html


def test_the_evaluation_history_is_the_recorded_one(firing, viewer):
    jobs_run(model_id=firing.model_id)  # a second evaluation
    html = viewer.get(alert_url(firing)).content.decode()
    body = html[html.index('id="evaluations"') :].split("</table>")[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)[1:]
    evaluations = list(AlertEvaluation.objects.filter(rule=firing.rule))
    assert len(rows) == len(evaluations) == 2
    for row, evaluation in zip(rows, evaluations, strict=True):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", row)]
        assert cells[2] == f"{evaluation.value:.4f}"
        assert cells[3] == str(evaluation.n)
        assert cells[4] == "0.9000" and cells[5] == "\N{EN DASH}"
        assert cells[6] == "Too Low" and cells[7] == "firing"


def test_messages_show_their_delivery_state(firing, viewer):
    sent = Notification.objects.get()
    now = timezone.now()
    common = {"alert": firing, "kind": "reminder", "recipients": ["a@example.com"]}
    Notification.objects.create(
        **common,
        sequence=1,
        attempts=2,
        error="SMTP 451 try later",
        claimed_until=now + timedelta(minutes=5),
    )
    Notification.objects.create(
        **common, sequence=2, attempts=MAX_ATTEMPTS, error="550 no such user (given up)"
    )
    Notification.objects.create(**common, sequence=3)
    html = viewer.get(alert_url(firing)).content.decode()
    section = html[html.index('id="notifications"') :].split("</table>")[0]
    assert f"sent {sent.sent_at:%Y-%m-%d %H:%M} UTC" in section
    assert "delivery-retrying" in section and "SMTP 451 try later" in section
    assert "attempt 2 failed, retrying; next try after" in section
    assert "delivery-failed" in section and f"failed after {MAX_ATTEMPTS} attempts" in section
    assert "550 no such user" in section
    assert "delivery-due" in section


def test_the_email_links_to_the_alert_page(firing, viewer):
    (message,) = mail.outbox
    link = re.search(r"Alert: (\S+)", message.body).group(1)
    assert link == f"http://testserver{alert_url(firing)}"
    assert re.search(r"Chart: \S+#metric-accuracy", message.body)
    html_body = message.alternatives[0][0]
    assert f'href="{link}"' in html_body
    response = viewer.get(link.removeprefix("http://testserver"))
    assert response.status_code == 200 and "below its lower bound 0.9" in response.content.decode()


def test_an_editor_acknowledges_and_silences_from_the_alert_page(firing, editor):
    html = editor.get(alert_url(firing)).content.decode()
    assert 'id="acknowledge-form"' in html and 'id="silence-form"' in html
    back = {"next": alert_url(firing)}
    response = editor.post(f"{alert_url(firing)}acknowledge", back)
    assert response.status_code == 302 and response["Location"] == alert_url(firing)
    until = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = editor.post(
        f"{alert_url(firing)}silence", {**back, "until": until, "reason": "migration"}
    )
    assert response["Location"] == alert_url(firing)
    html = editor.get(alert_url(firing)).content.decode()
    assert "Acknowledged by editor" in html
    assert "The rule is silenced until" in html and "migration" in html
    response = editor.post(f"{alert_url(firing)}unsilence")
    assert response["Location"] == alert_url(firing)
    firing.rule.refresh_from_db()
    assert firing.rule.silenced_until is None
    # Elsewhere than this site is never a place to go back to.
    response = editor.post(f"{alert_url(firing)}acknowledge", {"next": "https://evil.example/"})
    assert response["Location"] == "/models/churn/"


def test_a_silence_needs_a_future_time_and_a_reason(firing, editor):
    past = editor.post(f"{alert_url(firing)}silence", {"until": "2000-01-01T00:00", "reason": "x"})
    assert past.status_code == 400 and "in the future" in past.content.decode()
    assert editor.post(f"{alert_url(firing)}silence", {"until": "soon"}).status_code == 400


def test_a_viewer_sees_the_alert_but_cannot_act(firing, viewer):
    html = viewer.get(alert_url(firing)).content.decode()
    assert "acknowledge-form" not in html and "silence-form" not in html
    assert "Edit the rule" not in html
    until = "2999-01-01T00:00"
    calls = [
        viewer.post(f"{alert_url(firing)}acknowledge", {"next": alert_url(firing)}),
        viewer.post(f"{alert_url(firing)}silence", {"until": until, "reason": "x"}),
    ]
    assert [c.status_code for c in calls] == [403, 403]
    firing.refresh_from_db()
    assert firing.acknowledged_at is None


def test_another_models_alert_is_not_found(firing, viewer):
    from factory.services import model_create

    model_create(name="other", task="regression")
    assert viewer.get(f"/models/other/alerts/{firing.pk}/").status_code == 404


def test_segment_names_are_escaped_on_alert_pages(firing, viewer):
    AlertRule.objects.filter(pk=firing.rule_id).update(segment=XSS)
    for url in (alert_url(firing), "/alerts/"):
        html = viewer.get(url).content.decode()
        assert XSS not in html
    shown = viewer.get(alert_url(firing)).content.decode()
    assert "segment “&lt;script&gt;alert(1)&lt;/script&gt;”" in shown


def alerts_listed(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'data-alert="(\d+)"', html)]


def alert_of(model, *, severity: str, state: str, started_days_ago: int) -> Alert:
    rule = AlertRule.objects.create(
        model=model, metric="accuracy", kind="static", lower=0.9, severity=severity
    )
    now = timezone.now()
    return Alert.objects.create(
        rule=rule,
        model=model,
        state=state,
        direction="too_low",
        value=0.5,
        n=100,
        lower=0.9,
        window_start=now - timedelta(days=1),
        window_end=now,
        started_at=now - timedelta(days=started_days_ago),
        resolved_at=now if state == "resolved" else None,
    )


def test_the_list_puts_open_critical_alerts_first_then_firing_then_the_newest(model, viewer):
    # given: alerts of both severities and every state, started on different days
    old_critical = alert_of(model, severity="critical", state="firing", started_days_ago=9)
    new_warning = alert_of(model, severity="warning", state="firing", started_days_ago=1)
    pending_critical = alert_of(model, severity="critical", state="pending", started_days_ago=2)
    pending_warning = alert_of(model, severity="warning", state="pending", started_days_ago=0)
    resolved_critical = alert_of(model, severity="critical", state="resolved", started_days_ago=0)
    # when
    html = viewer.get("/alerts/", {"state": "all"}).content.decode()
    # then: open before resolved, critical first, firing before pending, then the newest
    expected = [old_critical, pending_critical, new_warning, pending_warning, resolved_critical]
    assert alerts_listed(html) == [a.pk for a in expected]
    table = html[html.index('id="alerts"') :]
    assert table.index("severity-critical") < table.index("severity-warning")
    assert "<th>Severity</th>" in html


def test_acknowledged_and_silenced_alerts_are_marked(firing, viewer):
    firing.rule.silenced_until = timezone.now() + timedelta(hours=4)
    firing.rule.save()
    Alert.objects.filter(pk=firing.pk).update(acknowledged_at=timezone.now(), acknowledged_by="ana")
    html = viewer.get("/alerts/").content.decode()
    until = f"{firing.rule.silenced_until:%Y-%m-%d %H:%M}"
    assert "✓ acknowledged by ana" in html and f"silenced until {until}" in html


def test_an_editor_acknowledges_several_alerts_at_once(model, editor, viewer):
    # given: three open alerts and a resolved one
    chosen = [
        alert_of(model, severity="warning", state="firing", started_days_ago=d) for d in (1, 2)
    ]
    left = alert_of(model, severity="critical", state="firing", started_days_ago=3)
    resolved = alert_of(model, severity="critical", state="resolved", started_days_ago=0)
    html = editor.get("/alerts/").content.decode()
    assert 'id="acknowledge-selected"' in html
    assert f'name="alert" value="{resolved.pk}"' not in html  # nothing to acknowledge there
    # when two of them (and, by a forged form, the resolved one) are acknowledged together
    ids = [a.pk for a in chosen] + [resolved.pk]
    response = editor.post("/alerts/acknowledge", {"alert": ids, "next": "/alerts/?model=churn"})
    # then only the open ones are, by the editor, and the list says so
    assert response.status_code == 302 and response["Location"] == "/alerts/?model=churn"
    acknowledged = Alert.objects.filter(acknowledged_by="editor").values_list("pk", flat=True)
    assert sorted(acknowledged) == sorted(a.pk for a in chosen)
    left.refresh_from_db()
    assert left.acknowledged_at is None
    html = editor.get(response["Location"]).content.decode()
    assert "2 alerts acknowledged (1 resolved or acknowledged already)." in html
    # and a viewer has no boxes to tick and cannot post the form
    assert 'name="alert"' not in viewer.get("/alerts/").content.decode()
    assert viewer.post("/alerts/acknowledge", {"alert": [left.pk]}).status_code == 403
    assert editor.post("/alerts/acknowledge", {"alert": ["x"]}).status_code == 400
    assert editor.post("/alerts/acknowledge", {"alert": [str(10**20)]}).status_code == 400
    assert editor.post("/alerts/acknowledge", {}).status_code == 400
