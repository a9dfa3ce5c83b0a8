"""The model page in headless Chromium at 1440x900, on the demo: its first screen answers "is
it healthy, and what changed?" (health in words, open alerts with the critical first, the
headline metrics), and the day not over yet, like the part-day the data starts in, is drawn as
partial, never as a drop."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from accounts.roles import Role
from monitoring.demo import demo_create
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import METRICS
from monitoring.metrics.windows import window_start
from monitoring.models import Alert, AlertState, Prediction
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import SCREENSHOTS, log_in, user_make

page = browser.page
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREEN = {"width": 1440, "height": 900}
# The demo's first, uncached model page tests every feature's drift in every window: on a
# shared two-core machine it can take longer than Playwright's 30 s default.
COLD_PAGE_MS = 120_000


@pytest.fixture
def demo(db):
    model = demo_create()
    jobs_run(model_id=model.pk)
    user_make("ds", Role.EDITOR)
    return model


def bottom(page, selector: str) -> float:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box["y"] + box["height"]


def test_the_first_screen_shows_health_open_alerts_and_headline_metrics(live_server, demo, page):
    page.set_viewport_size(SCREEN)
    page.set_default_timeout(COLD_PAGE_MS)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/")
    page.wait_for_selector("#metric-accuracy .main-svg")
    page.screenshot(path=str(SCREENSHOTS / "model-first-screen.png"))
    for selector in ("#health", "#headlines", "#open-alerts tbody tr:first-child"):
        assert bottom(page, selector) <= SCREEN["height"], f"{selector} is below the first screen"
    open_alerts = Alert.objects.exclude(state=AlertState.RESOLVED)
    firing = open_alerts.filter(state=AlertState.FIRING).count()
    health = page.inner_text("#health")
    assert "Needs attention" in health and f"{firing} alerts firing" in health
    rows = page.locator("#open-alerts tbody tr")
    assert rows.count() == open_alerts.count()
    assert rows.first.locator(".severity").inner_text() == "critical"  # critical first
    first = rows.first.inner_text()
    assert "Accuracy too low" in first and "at least 80.0%" in first  # value against bounds
    headlines = page.inner_text("#headlines")
    for label in ("ROC AUC", "Accuracy", "Positive rate", "Predictions"):
        assert label in headlines
    assert "95% interval" in headlines and "the same day a week before" in headlines
    assert "began serving" in page.inner_text("#changes")
    assert "Labels usually arrive within" in page.inner_text("#label-maturity")
    shown = page.inner_text("#summary")
    raw = [m.key for m in METRICS if "_" in m.key and m.key in shown]
    assert raw == [], f"raw metric keys on the first screen: {raw}"
    assert page.console_errors == []


def test_the_day_in_progress_is_drawn_as_partial(live_server, demo, page):
    page.set_viewport_size(SCREEN)
    page.set_default_timeout(COLD_PAGE_MS)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/")
    page.wait_for_selector("#metric-predictions .main-svg")
    chart = page.locator("#metric-predictions")
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=str(SCREENSHOTS / "model-partial-day.png"))
    today = window_start(datetime.now(UTC), "day").isoformat()
    figure = json.loads(page.inner_text("#metric-predictions-data"))
    traces = {t["name"]: t for t in figure["data"]}
    line, so_far = traces["Predictions (count)"], traces["Predictions (count), so far"]
    assert today not in line["x"] and line["x"][-1] < today  # the line stops at yesterday
    assert so_far["x"] == [today] and so_far["mode"] == "markers"  # today: an open marker
    hatches = {t["name"]: t for t in figure["data"] if t["type"] == "bar"}
    hatch = hatches["today so far"]
    assert hatch["marker"]["pattern"]["shape"] == "/"
    assert "dash" not in json.dumps(so_far) and "dash" not in json.dumps(hatch)
    # The demo's data starts mid-day: its first day is a part of a day, drawn as partial too,
    # so it never reads as a dip before the line starts.
    first = Prediction.objects.order_by("timestamp").values_list("timestamp", flat=True)[0]
    first_day = window_start(first, "day").isoformat()
    name = f"first day, from {window_start(first, 'hour'):%H:%M}"
    assert hatches[name]["marker"]["pattern"]["shape"] == "/"
    assert traces[f"Predictions (count), {name}"]["x"] == [first_day]
    assert line["x"][0] > first_day  # the line starts at the first whole day
    # Drawn: Plotly fills the bars with SVG patterns, and the windows are named.
    assert chart.locator("pattern").count() >= 2
    assert "today so far" in chart.inner_text() and name in chart.inner_text()
    assert page.console_errors == []


def test_performance_charts_draw_the_estimate_dashed_beside_the_realised_line(
    live_server, demo, page
):
    # given the demo, whose latest days still wait for their outcomes
    page.set_viewport_size(SCREEN)
    page.set_default_timeout(COLD_PAGE_MS)
    log_in(page, live_server)
    # when its model page is drawn
    page.goto(f"{live_server.url}/models/churn/")
    page.wait_for_selector("#metric-roc_auc .main-svg")
    chart = page.locator("#metric-roc_auc")
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=str(SCREENSHOTS / "model-estimate.png"))
    # then the estimate is dashed with its band, the realised line solid
    figure = json.loads(page.inner_text("#metric-roc_auc-data"))
    traces = {t["name"]: t for t in figure["data"]}
    estimate = traces["ROC AUC (0 to 1), estimated before outcomes"]
    realised = traces["ROC AUC (0 to 1)"]
    assert estimate["line"]["dash"] == "dash" and "dash" not in realised["line"]
    assert "estimate's 95% band" in traces
    # and windows without a realised value yet show the estimate instead of nothing
    known = {x for x, y in zip(realised["x"], realised["y"], strict=True) if y is not None}
    assert set(estimate["x"]) - known
    assert "Dashed: estimated from the scores alone" in chart.inner_text()
    assert page.console_errors == []
