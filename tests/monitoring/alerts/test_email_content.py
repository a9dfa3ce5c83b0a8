"""The alert e-mail as received by a real local SMTP server, field by field: its structure
(text, HTML, and the PNG the HTML shows by cid), the subject's order, the version, the drivers,
and the one-click links to acknowledge or silence, followed through login to the confirmation."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time
from scipy import stats
from sklearn.metrics import roc_auc_score

from accounts.roles import Role, user_role_set
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
from monitoring.models import Alert, Label, Prediction
from tests.conftest import outcome, prediction
from tests.monitoring.alerts.email_parts import bodies, inline_images, png_pixels
from tests.monitoring.alerts.test_kinds import DAY0, end_of_day, rule, traffic

pytestmark = pytest.mark.django_db
ACCURACY, PREDICTIONS = metric_label("accuracy"), metric_label("predictions")


@pytest.fixture
def three_alerts(model, smtp_server, settings):
    """Accuracy 0.4 on day 0 breaks two warning rules; 50 predictions break a critical one."""
    settings.CANARY_BASE_URL = "http://testserver"
    rule(model, kind="static", lower=0.8)
    rule(model, kind="static", lower=0.9)
    critical = rule(model, metric="predictions", kind="static", upper=10, severity="critical")
    traffic(model, 0, n=50, correct=20, version="2.1.0")
    jobs_run(model_id=model.pk, now=end_of_day(0))
    ((_, message),) = smtp_server.messages
    return message, critical


def test_the_e_mail_is_text_and_html_with_its_charts_inside_and_no_svg(three_alerts):
    message, _ = three_alerts
    # the whole: related parts, so mail programs show the pictures in place
    assert message.get_content_type() == "multipart/related"
    text, html = bodies(message)
    assert "<svg" not in html and "<svg" not in text
    # one PNG per alert, inline, each shown by the HTML through its Content-ID
    images = inline_images(message)
    assert len(images) == 3
    shown = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert sorted(shown) == sorted(f"cid:{cid}" for cid in images)
    for part in message.walk():
        if part.get_content_maintype() == "image":
            assert part.get_content_type() == "image/png"
            assert part.get_content_disposition() == "inline"
    for png in images.values():
        assert png_pixels(png).shape == (96, 480, 3)
    # the chart says what it shows to a reader who blocks pictures
    assert f'alt="{ACCURACY} over the last' in html


def test_the_subject_puts_the_critical_alert_first_and_names_each_change_once(three_alerts):
    message, critical = three_alerts
    subject = message["Subject"]
    assert subject == (
        f"[Canary] CRITICAL churn: 3 alert changes ({PREDICTIONS} too high, "
        f"{ACCURACY} too low on 2 rules)"
    )
    # and the body tells the critical one first, marked
    text, html = bodies(message)
    overview, first = text.split("\n====\n\n")[0], text.split("\n====\n\n")[1]
    assert overview.splitlines() == [
        "3 changes of churn, the most urgent first:",
        f"- critical: {PREDICTIONS} too high (50.0000 > 10.0000)",
        f"- {ACCURACY} too low (0.4000 < 0.8000)",
        f"- {ACCURACY} too low (0.4000 < 0.9000)",
    ]
    assert first.startswith(f"CRITICAL. Firing (critical): {PREDICTIONS} of churn is too high.")
    assert html.index(f"{PREDICTIONS} of churn") < html.index(f"{ACCURACY} of churn")
    assert f"static #{critical.pk}" in text.split("----")[0]


def test_the_e_mail_names_the_version_of_the_window(three_alerts):
    text, html = bodies(three_alerts[0])
    assert text.count("Version: 2.1.0\n") == 3
    assert html.count('<th align="left">Version</th><td>2.1.0</td>') == 3


def regional_traffic(model, day: int, correct: dict[str, int], n: int = 200, day0=DAY0) -> None:
    """`n` labelled predictions per region on day `day` (after `day0`), `correct[region]` of
    them right."""
    at = day0 + timedelta(days=day, hours=6)
    records, outcomes = [], []
    for offset, (region, right) in enumerate(sorted(correct.items())):
        first = day * 10_000 + offset * n
        for i in range(first, first + n):
            features = {"region": region, "age": 40}
            records.append(prediction(i, at=at, prediction=1, features=features))
            outcomes.append(outcome(i, at=at + timedelta(hours=1), outcome=int(i - first < right)))
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)


@pytest.fixture
def south_breaks(model):
    """Accuracy 0.9 in both regions on day -1; on day 0 it falls to 0.5 in the south only, so
    the model's accuracy falls from 0.9 to 0.7, all of it within region south: its share is
    half in both days, so its within effect is 0.5 * (0.5 - 0.9) = -20 points."""
    rule(model, kind="static", lower=0.8)
    regional_traffic(model, -1, {"north": 180, "south": 180})
    regional_traffic(model, 0, {"north": 180, "south": 100})
    return model


SOUTH_DRIVER = "Within region south: -20.0 points (Accuracy fell from 0.90 to 0.50 there)"


def test_the_top_drivers_of_the_change_are_listed_with_effect_and_q_value(
    south_breaks, smtp_server
):
    # when: day 0 is judged
    jobs_run(model_id=south_breaks.pk, now=end_of_day(0))
    # then: the e-mail names the region where accuracy fell, and nothing else (north did
    # not move; the one version, segment and age are the whole window)
    text, html = bodies(smtp_server.messages[0][1])
    drivers = text.split("What drives it:\n")[1].split("\n\n")[0].splitlines()
    assert drivers == [f"- {SOUTH_DRIVER}, q < 0.001"]
    assert f"<li>{SOUTH_DRIVER}, q &lt; 0.001</li>" in html
    # the q-value's claim holds on the rows: SciPy's two-proportion test of the south's
    # 180 of 200 against 100 of 200, even times the five slices tested, is far below it
    table = [[180, 20], [100, 100]]
    assert stats.chi2_contingency(table, correction=False).pvalue * 5 < 0.001


def test_a_failing_explanation_sends_the_e_mail_without_drivers(
    south_breaks, smtp_server, caplog, monkeypatch
):
    # given: the explanation breaks in a way nobody foresaw
    def broken(**kwargs):
        raise RuntimeError("aggregates unreadable")

    monkeypatch.setattr("monitoring.alerts.messages.explain", broken)
    # when
    jobs_run(model_id=south_breaks.pk, now=end_of_day(0))
    # then: the e-mail goes out, without drivers, and the failure is logged
    text, _ = bodies(smtp_server.messages[0][1])
    assert "too low" in text and "What drives it" not in text
    assert "its drivers could not be computed" in caplog.text


def test_without_drivers_the_e_mail_says_nothing_of_them(three_alerts):
    text, html = bodies(three_alerts[0])
    assert "What drives it" not in text and "What drives it" not in html


def action_link(text: str, label: str) -> str:
    """The link after `label:` in the plain text's first block, without the host."""
    link = re.search(rf"^{label}: (\S+)$", text.split("----")[0], re.M).group(1)
    return link.removeprefix("http://testserver")


def user_client(name: str, role: Role) -> Client:
    user = get_user_model().objects.create_user(name, password="a-long-password")
    user_role_set(user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_the_acknowledge_link_lands_on_the_alert_after_login_and_acts_on_a_post(three_alerts):
    message, critical = three_alerts
    text, html = bodies(message)
    link = action_link(text, "Acknowledge")
    assert f'href="http://testserver{link}"' in html.replace("&amp;", "&")
    alert = Alert.objects.get(rule=critical)
    assert urlsplit(link).path == f"/models/churn/alerts/{alert.pk}/"
    # a stranger is sent to log in, and back to the same link after
    answer = Client().get(link)
    assert answer.status_code == 302 and answer["Location"].startswith("/login/")
    assert parse_qs(urlsplit(answer["Location"]).query)["next"] == [link]
    # following the link shows a confirmation; it does not act by itself
    editor = user_client("ana", Role.EDITOR)
    page = editor.get(link).content.decode()
    assert "Acknowledge alert #" in page and "Confirm: acknowledge" in page
    alert.refresh_from_db()
    assert alert.acknowledged_at is None
    # the confirmation posts the token; then it is done, by the person logged in
    token = parse_qs(urlsplit(link).query)["act"][0]
    answer = editor.post(f"/models/churn/alerts/{alert.pk}/act", {"act": token})
    assert answer.status_code == 302 and answer["Location"] == urlsplit(link).path
    alert.refresh_from_db()
    assert alert.acknowledged_by == "ana"
    assert "Acknowledged: no more reminders." in editor.get(answer["Location"]).content.decode()
    # a second visit says it is done already
    assert "Already acknowledged by ana" in editor.get(link).content.decode()


def test_a_silence_link_preselects_its_time_and_the_person_may_pick_another(three_alerts):
    text, _ = bodies(three_alerts[0])
    link = action_link(text, "Silence 1 day")
    alert = Alert.objects.get(rule=three_alerts[1])
    editor = user_client("ana", Role.EDITOR)
    page = editor.get(link).content.decode()
    assert "Silence rule #" in page and '<option value="24" selected>1 day</option>' in page
    token = parse_qs(urlsplit(link).query)["act"][0]
    before = timezone.now()
    editor.post(
        f"/models/churn/alerts/{alert.pk}/act", {"act": token, "hours": "4", "reason": "deploy"}
    )
    alert.rule.refresh_from_db()
    assert alert.rule.silence_reason == "deploy"
    silence = alert.rule.silenced_until - before
    assert timedelta(hours=4) <= silence < timedelta(hours=4, minutes=1)
    # a time the links do not offer is refused
    answer = editor.post(f"/models/churn/alerts/{alert.pk}/act", {"act": token, "hours": "9999"})
    assert answer.status_code == 400


def test_a_link_is_refused_when_old_forged_or_for_another_alert(three_alerts):
    text, _ = bodies(three_alerts[0])
    link = action_link(text, "Acknowledge")
    token = parse_qs(urlsplit(link).query)["act"][0]
    alert = Alert.objects.get(rule=three_alerts[1])
    other = Alert.objects.exclude(pk=alert.pk).first()
    editor = user_client("ana", Role.EDITOR)
    # another alert's page with this alert's token
    page = editor.get(f"/models/churn/alerts/{other.pk}/?act={token}").content.decode()
    assert "this link is for another alert" in page and "Confirm:" not in page
    answer = editor.post(f"/models/churn/alerts/{other.pk}/act", {"act": token})
    assert answer.status_code == 400
    # a changed token
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    page = editor.get(f"/models/churn/alerts/{alert.pk}/?act={forged}").content.decode()
    assert "this link is not one Canary made" in page
    # eight days on, the link has expired
    with freeze_time(timezone.now() + timedelta(days=8)):
        page = editor.get(link).content.decode()
        assert "this link has expired (links work for 7 days)" in page
        answer = editor.post(f"/models/churn/alerts/{alert.pk}/act", {"act": token})
        assert answer.status_code == 400
    alert.refresh_from_db()
    other.refresh_from_db()
    assert alert.acknowledged_at is None and other.acknowledged_at is None


def test_a_viewer_following_a_link_is_told_it_needs_an_editor(three_alerts):
    text, _ = bodies(three_alerts[0])
    link = action_link(text, "Acknowledge")
    viewer = user_client("vic", Role.VIEWER)
    page = viewer.get(link).content.decode()
    assert "needs the editor role" in page and "Confirm:" not in page
    alert = Alert.objects.get(rule=three_alerts[1])
    token = parse_qs(urlsplit(link).query)["act"][0]
    assert viewer.post(f"/models/churn/alerts/{alert.pk}/act", {"act": token}).status_code == 403


def test_a_resolved_alerts_message_offers_no_action(model, smtp_server):
    rule(model, kind="static", lower=0.8, resolve_windows=1)
    traffic(model, 0, n=50, correct=20)
    jobs_run(model_id=model.pk, now=end_of_day(0))
    traffic(model, 1, n=50, correct=48)
    jobs_run(model_id=model.pk, now=end_of_day(1))
    resolved = smtp_server.messages[1][1]
    assert "RESOLVED" in resolved["Subject"]
    text, html = bodies(resolved)
    assert "Acknowledge" not in text and "Acknowledge" not in html and "?act=" not in html


def regional_scores(model, day: int, informative: dict[str, bool], n: int = 200) -> None:
    """`n` labelled, scored predictions per region on day `day`, half of them positive. A
    region's scores rank its outcomes (positives score high) when informative, else the wrong
    way round. Scores sit on the centres of the slices' 50 score bins, so binning loses
    nothing."""
    at = DAY0 + timedelta(days=day, hours=6)
    centres = (np.arange(50) + 0.5) / 50
    records, outcomes = [], []
    for offset, (region, ranks) in enumerate(sorted(informative.items())):
        first = (day + 5) * 10_000 + offset * n
        for i in range(first, first + n):
            positive = (i - first) % 2
            bin_ = (i - first) // 2 % 25 + 25 * (positive if ranks else 1 - positive)
            score = float(centres[bin_])
            features = {"region": region, "age": 40}
            records.append(prediction(i, at=at, score=score, features=features))
            outcomes.append(outcome(i, at=at + timedelta(hours=1), outcome=positive))
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)


def test_an_roc_auc_alert_names_the_slice_where_the_ranking_broke(model, smtp_server):
    # given: on day -1 the scores rank the outcomes in both regions; on day 0 not in the south
    rule(model, kind="static", metric="roc_auc", lower=0.8)
    regional_scores(model, -1, {"north": True, "south": True})
    regional_scores(model, 0, {"north": True, "south": False})
    # when: day 0 is judged
    jobs_run(model_id=model.pk, now=end_of_day(0))
    # then: the e-mail's first driver is the south: its ROC AUC and its impact (the change
    # minus the change without it) as scikit-learn has them on the rows
    text, _ = bodies(smtp_server.messages[0][1])
    drivers = text.split("What drives it:\n")[1].split("\n\n")[0].splitlines()
    rows: dict[tuple, tuple[list, list]] = {}
    for row in Prediction.objects.filter(model=model):
        label = Label.objects.get(prediction_id=row.pk)
        for key in ((row.timestamp.date(), "all"), (row.timestamp.date(), row.features["region"])):
            rows.setdefault(key, ([], []))
            rows[key][0].append(int(label.outcome))
            rows[key][1].append(row.score)
    before, after = sorted({day for day, _ in rows})
    auc = {key: roc_auc_score(*columns) for key, columns in rows.items()}
    change = auc[after, "all"] - auc[before, "all"]
    impact = change - (auc[after, "north"] - auc[before, "north"])
    south = f"ROC AUC fell from {auc[before, 'south']:.2f} to {auc[after, 'south']:.2f} there"
    assert drivers[0] == f"- With region south: {impact:.3g} ({south}), q < 0.001"
