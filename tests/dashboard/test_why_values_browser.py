"""The "Why?" page in headless Chromium for a business value's mean and for macro F1: the
planted drop in region south named first, the waterfall of mix against within for the value,
and for macro F1 (ranked by impact) the words that say why there is none."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest

from accounts.roles import Role
from factory.services import model_create
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import SCREENSHOTS, log_in, user_make
from tests.monitoring.metrics import test_explain_values as planted
from tests.monitoring.metrics.test_explain import BASE_START, CUR_START

page = browser.page
revenue_frame, class_frame = planted.revenue_frame, planted.class_frame
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def why_url(live_server, metric: str) -> str:
    query = {
        "metric": metric,
        "start": CUR_START.isoformat(),
        "end": (CUR_START + timedelta(days=7)).isoformat(),
        "baseline_start": BASE_START.isoformat(),
        "baseline_end": CUR_START.isoformat(),
    }
    return f"{live_server.url}/models/why/why/?{urlencode(query)}"


def why_open(live_server, page, frame, metric: str, **task) -> None:
    """The planted model's Why? page for the metric, as an editor sees it."""
    model = model_create(name="why", **task)
    planted.rows_ingest(model, frame)
    user_make("ds", Role.EDITOR)
    log_in(page, live_server)
    page.goto(why_url(live_server, metric))


def test_why_did_revenue_per_labelled_prediction_fall(live_server, revenue_frame, page):
    binary = {"task": "binary_classification", "positive_class": 1}
    why_open(live_server, page, revenue_frame, "value:revenue", **binary)
    page.wait_for_selector("#why-waterfall .main-svg")
    assert "Revenue per labelled prediction fell" in page.inner_text("#change-sentence")
    drivers = page.locator("li.driver").all_inner_texts()
    assert any("region south" in text for text in drivers[:3]), drivers
    picker = page.locator("#why-scope select").inner_text()
    assert "Revenue per labelled prediction" in picker and "Cost per labelled prediction" in picker
    page.screenshot(path=str(SCREENSHOTS / "why-value.png"), full_page=True)
    assert page.console_errors == []


def test_why_did_macro_f1_fall(live_server, class_frame, page):
    why_open(live_server, page, class_frame, "macro_f1", task="multiclass_classification")
    page.wait_for_selector("#change-sentence")
    assert "Macro F1 score fell" in page.inner_text("#change-sentence")
    first = page.locator("li.driver").first.inner_text()
    assert "region south" in first, first
    assert "not a mean over its observations" in page.inner_text("main")
    assert page.locator("#why-waterfall").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "why-macro-f1.png"), full_page=True)
    assert page.console_errors == []
