"""The dashboard in headless Chromium: every page with data, roles, an alert e-mail's link,
a rule made on the page that fires. `make screenshots` (CANARY_SCREENSHOTS=docs/screenshots)
keeps the pictures the README shows, at 1440x900."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from accounts.roles import Role, user_role_set
from monitoring.demo import demo_create
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertRule, AlertState
from tests.conftest import need_service, outcome, prediction

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(os.environ.get("CANARY_SCREENSHOTS", "/tmp/canary-screenshots"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "a-long-password"


@pytest.fixture
def page(live_server):  # so the browser closes before the server stops
    need_service("Chromium", os.path.exists(CHROMIUM))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Playwright's sync API runs an event loop in this thread; the ORM calls here are sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})  # the screenshots' size
        page.console_errors = []
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))
        yield page
        browser.close()


def user_make(name: str, role: Role) -> None:
    user = get_user_model().objects.create_user(name, password=PASSWORD)
    user_role_set(user=user, role=role)


@pytest.fixture
def model_with_data(model):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    records = [prediction(i, at=now - timedelta(hours=i)) for i in range(120)]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    labels = [outcome(i, at=now, outcome=int(i % 3 > 0)) for i in range(100)]
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    AlertRule.objects.create(model=model, metric="accuracy", kind="static", lower=0.9, min_count=5)
    jobs_run(model_id=model.pk)
    user_make("ds", Role.EDITOR)
    user_make("viewer", Role.VIEWER)
    return model


def log_in(page, live_server, username: str = "ds"):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("h1:text('Models')")


def test_log_in_open_the_model_and_see_its_charts(live_server, model_with_data, page):
    log_in(page, live_server)
    assert "firing" in page.inner_text("table.grid")
    page.click("a:text('churn')")
    page.wait_for_selector("#metric-accuracy .main-svg")
    chart = page.inner_text("#metric-accuracy")
    assert "Accuracy per day" in chart
    assert "rule #" in chart  # the rule's bound is drawn
    assert "too low" in page.inner_text("#alerts")
    assert page.console_errors == []


def test_a_wrong_password_is_refused(live_server, model_with_data, page):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ds")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert "didn't match" in page.inner_text("main")


def test_every_page_renders_the_demo_without_errors(live_server, db, page):
    model = demo_create()
    jobs_run(model_id=model.pk)
    records_ingest(
        model=model,
        kind="predictions",
        enqueue_jobs=False,
        records=[{"prediction_id": "broken", "score": 3}],
    )
    user_make("ds", Role.EDITOR)
    log_in(page, live_server)
    page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)
    assert page.locator("#models svg.sparkline").count() == 1
    pages = {
        "model": ("/models/churn/", ".plot .main-svg", 7),
        "model-segment": ("/models/churn/?segment=mobile&granularity=week", ".plot .main-svg", 7),
        "business": ("/models/churn/business/", ".plot .main-svg", 1),
        "rows": ("/models/churn/rows/?labelled=yes&feature=plan&category=premium", "#rows td", 50),
        "quarantine": ("/models/churn/quarantine/", "#quarantine td", 9),
    }
    for name, (path, selector, at_least) in pages.items():
        page.goto(live_server.url + path)
        page.wait_for_selector(selector)
        assert page.locator(selector).count() >= at_least, name
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    assert page.console_errors == []


def test_a_chart_point_opens_the_rows_behind_it(live_server, model_with_data, page):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/")
    page.wait_for_selector("#metric-predictions .main-svg")
    page.click("#metric-predictions .rows-link")
    page.wait_for_selector("#rows td")
    assert "the rows behind Predictions" in page.inner_text("h1")
    assert "120 rows" in page.inner_text("main")
    assert page.console_errors == []


def test_a_viewer_cannot_change_anything(live_server, model_with_data, page):
    log_in(page, live_server, "viewer")
    page.goto(f"{live_server.url}/models/churn/")
    page.wait_for_selector("#metric-accuracy .main-svg")
    assert page.locator("#rule-form").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "viewer.png"))
    # Even a hand-made request with the session and its CSRF token is refused.
    statuses = page.evaluate(
        """async () => {
          const token = document.querySelector("[name=csrfmiddlewaretoken]").value;
          const headers = {"X-CSRFToken": token, "Content-Type": "application/json"};
          const form = new FormData();
          form.append("csrfmiddlewaretoken", token); form.append("metric", "accuracy");
          form.append("lower", "0.5");
          const rule = JSON.stringify({metric: "accuracy", kind: "static", lower: 0.5});
          const api = await fetch("/api/v1/models/churn/alert-rules",
                                  {method: "POST", headers, body: rule});
          return [
            (await fetch("/models/churn/rules/", {method: "POST", body: form})).status,
            api.status,
            (await fetch("/api/v1/models/churn/alert-rules/1", {method: "DELETE", headers})).status,
            (await api.json()).detail,
          ];
        }"""
    )
    assert statuses[:3] == [403, 403, 403]
    assert "needs the editor role" in statuses[3]  # refused for the role, not for CSRF
    assert AlertRule.objects.count() == 1


@pytest.fixture
def alert_links_here(settings, live_server):
    settings.CANARY_BASE_URL = live_server.url


def test_an_alert_email_link_lands_on_its_chart(
    live_server, alert_links_here, smtp_server, model_with_data, page
):
    (_, message) = smtp_server.messages[0]
    text = message.get_body(("plain",)).get_content()
    link = re.search(r"Chart: (\S+)", text).group(1)
    assert link.startswith(live_server.url) and link.endswith("#metric-accuracy")
    log_in(page, live_server)
    page.goto(link)
    page.wait_for_selector("#metric-accuracy.focused .main-svg")
    box = page.locator("#metric-accuracy").bounding_box()
    assert -2 <= box["y"] < 900  # scrolled into view
    assert "Accuracy per day" in page.inner_text("#metric-accuracy")
    page.screenshot(path=str(SCREENSHOTS / "alert-link.png"))
    assert page.console_errors == []


def test_a_rule_created_on_the_page_fires(live_server, model_with_data, page):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/")
    page.select_option("#rule-form select[name=metric]", "predictions")
    page.fill("#rule-form input[name=upper]", "10")
    page.fill("#rule-form input[name=min_count]", "5")
    page.click("#rule-form button[type=submit]")
    page.wait_for_selector("text=created; it is judged on the next job run")
    rule = AlertRule.objects.get(metric="predictions")
    assert (rule.kind, rule.upper, rule.lower) == ("static", 10.0, None)
    jobs_run(model_id=model_with_data.pk)
    alert = Alert.objects.get(rule=rule)
    assert alert.state == AlertState.FIRING and alert.direction == "too_high"
    page.reload()
    page.wait_for_selector("#metric-predictions .main-svg")
    alerts = page.inner_text("#alerts")
    assert "Predictions" in alerts and "too high" in alerts
    assert "rule #" in page.inner_text("#metric-predictions")  # its bound is drawn
    assert page.console_errors == []
