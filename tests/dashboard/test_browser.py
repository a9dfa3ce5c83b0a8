"""The dashboard in headless Chromium: log in, open a model, see its charts."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import AlertRule
from tests.conftest import need_service, outcome, prediction

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = Path(os.environ.get("CANARY_SCREENSHOTS", "/tmp/canary-screenshots"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def page(live_server):  # so the browser closes before the server stops
    need_service("Chromium", os.path.exists(CHROMIUM))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Playwright's sync API runs an event loop in this thread; the ORM calls here are sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.console_errors = []
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.on("pageerror", lambda error: page.console_errors.append(str(error)))
        yield page
        browser.close()


@pytest.fixture
def model_with_data(model):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    records = [prediction(i, at=now - timedelta(hours=i)) for i in range(120)]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    labels = [outcome(i, at=now, outcome=int(i % 3 > 0)) for i in range(100)]
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    AlertRule.objects.create(model=model, metric="accuracy", kind="static", lower=0.9, min_count=5)
    jobs_run(model_id=model.pk)
    get_user_model().objects.create_user("ds", password="a-long-password")
    return model


def log_in(page, live_server):
    page.goto(f"{live_server.url}/")
    page.fill("#id_username", "ds")
    page.fill("#id_password", "a-long-password")
    page.click("button[type=submit]")


def test_log_in_open_the_model_and_see_its_charts(live_server, model_with_data, page):
    log_in(page, live_server)
    page.wait_for_selector("text=churn")
    assert "firing" in page.inner_text("table.grid")
    page.click("a:text('churn')")
    page.wait_for_selector("#metric-accuracy .main-svg")
    assert page.locator(".plot.js-plotly-plot").count() == 3
    page.screenshot(path=str(SCREENSHOTS / "model.png"), full_page=True)
    chart = page.inner_text("#metric-accuracy")
    assert "Accuracy per day" in chart
    assert "rule #" in chart  # the rule's bound is drawn
    assert "too_low" in page.inner_text("body") or "Too Low" in page.inner_text("body")
    assert page.console_errors == []


def test_a_wrong_password_is_refused(live_server, model_with_data, page):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "ds")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    assert "didn't match" in page.inner_text("main")
