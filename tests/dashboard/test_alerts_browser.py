"""Alerts, the rule form and the alert e-mail in headless Chromium: the noise warning appearing
as a rule is typed, acknowledging several alerts at once, and an e-mail's acknowledge link
followed through login to the confirmation. Screenshots at 1440 x 900 go to CANARY_SCREENSHOTS."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.models import Alert, AlertRule
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import PASSWORD, SCREENSHOTS, log_in
from tests.monitoring.alerts.email_parts import bodies, shown_in_a_mail_program

page, model_with_data = browser.page, browser.model_with_data
alert_links_here = browser.alert_links_here
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def wide(page):
    """The page at 1440 x 900, the size the screenshots are looked at."""
    page.set_viewport_size({"width": 1440, "height": 900})
    return page


def test_the_rule_form_warns_of_noise_as_the_rule_is_typed(live_server, model_with_data, wide):
    page = wide
    # given: a band rule wide enough for its data
    rule = AlertRule.objects.create(
        model=model_with_data, metric="accuracy", kind="band", k=4, min_count=5, baseline_windows=3
    )
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/rules/{rule.pk}/")
    page.wait_for_selector("#rule-check[data-checked]")
    assert page.locator("#noise-warning").count() == 0
    assert "smallest change of Accuracy this rule can tell" in page.inner_text("#rule-sensitivity")
    # only the band's fields are shown
    assert page.is_visible("input[name=k]") and not page.is_visible("input[name=lower]")
    # when k is narrowed, before anything is saved
    page.fill("input[name=k]", "0.1")
    page.wait_for_selector("#noise-warning")
    # then the warning says so, and the rule is unchanged
    assert "this rule will fire on noise" in page.inner_text("#noise-warning")
    rule.refresh_from_db()
    assert rule.k == 4
    page.screenshot(path=str(SCREENSHOTS / "rule-form-noise.png"))
    # and another kind shows its own fields
    page.select_option("select[name=kind]", "static")
    assert page.is_visible("input[name=lower]") and not page.is_visible("input[name=k]")
    assert "crosses a line you set" in page.inner_text("#kind-help")
    page.fill("input[name=lower]", "0.5")
    page.wait_for_function(
        "() => document.getElementById('rule-words').textContent.includes('below 0.5')"
    )
    assert page.console_errors == []


def alert_make(model, *, severity: str, days_ago: int) -> Alert:
    rule = AlertRule.objects.create(
        model=model, metric="positive_rate", kind="static", upper=0.5, severity=severity
    )
    now = timezone.now()
    return Alert.objects.create(
        rule=rule,
        model=model,
        state="firing",
        direction="too_high",
        value=0.9,
        n=120,
        upper=0.5,
        window_start=now - timedelta(days=1),
        window_end=now,
        started_at=now - timedelta(days=days_ago),
    )


def test_an_editor_acknowledges_every_open_alert_at_once(live_server, model_with_data, wide):
    page = wide
    # given: the model's firing accuracy alert and two more, one critical
    alert_make(model_with_data, severity="critical", days_ago=3)
    alert_make(model_with_data, severity="warning", days_ago=1)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/alerts/")
    page.wait_for_selector("#alerts")
    # the critical alert comes first
    assert page.inner_text("#alerts tbody tr:first-child .severity").lower() == "critical"
    assert page.is_disabled("#acknowledge-selected")
    page.screenshot(path=str(SCREENSHOTS / "alerts-bulk.png"))
    # when every open alert is ticked and acknowledged
    page.check("#select-all")
    assert page.inner_text("#acknowledge-selected") == "Acknowledge 3 selected alerts"
    page.click("#acknowledge-selected")
    page.wait_for_selector("text=3 alerts acknowledged.")
    # then they are, by the person logged in, and marked so
    assert set(Alert.objects.values_list("acknowledged_by", flat=True)) == {"ds"}
    assert page.locator("#alerts .mark.acknowledged").count() == 3
    assert page.locator("#alerts input[name=alert]").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "alerts-acknowledged.png"))
    assert page.console_errors == []


def test_the_acknowledge_link_of_an_e_mail_acknowledges_after_login_and_confirmation(
    live_server, alert_links_here, smtp_server, model_with_data, wide
):
    page = wide
    # given: the e-mail the firing alert sent, shown with its chart
    ((_, message),) = smtp_server.messages
    page.set_content(shown_in_a_mail_program(message))
    assert page.evaluate("() => document.querySelector('img').naturalWidth") == 480
    assert page.locator("svg").count() == 0
    text, _ = bodies(message)
    link = re.search(r"^Acknowledge: (\S+)$", text, re.M).group(1)
    assert link.startswith(live_server.url)
    # when the on-call follows it: first the login, then the alert page asks to confirm
    page.goto(link)
    page.fill("#id_username", "ds")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#confirm-action")
    alert = Alert.objects.get()
    assert page.url == link and alert.acknowledged_at is None
    page.screenshot(path=str(SCREENSHOTS / "alert-confirm.png"))
    page.click("text=Confirm: acknowledge")
    # then it is done and said
    page.wait_for_selector("#action-done")
    assert "Acknowledged: no more reminders." in page.inner_text("#action-done")
    alert.refresh_from_db()
    assert alert.acknowledged_by == "ds"
    assert "Acknowledged by ds" in page.inner_text("#explanation")
    assert page.console_errors == []
