"""The "Why?" page in headless Chromium: from an alert page to its drivers and on to the rows
of the top slice; from a chart point to its rows and on to why its window differed. The data:
accuracy 0.9 in both regions the day before yesterday, and yesterday 0.5 in the south only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.roles import Role
from monitoring.jobs import jobs_run
from monitoring.models import Alert
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import SCREENSHOTS, log_in, user_make
from tests.monitoring.alerts.test_email_content import regional_traffic
from tests.monitoring.alerts.test_kinds import rule

page = browser.page
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


# Where on the screen the last point of the chart's traced windows (those that carry
# customdata, as a click needs) is drawn, from Plotly's own axes.
POINT_ON_SCREEN = """(selector) => {
  const plot = document.querySelector(selector);
  const trace = plot._fullData.find((t) => t.customdata && t.y.some((v) => v !== null));
  const last = trace.y.map((v, i) => [v, i]).filter(([v]) => v !== null).pop()[1];
  const layout = plot._fullLayout, box = plot.querySelector(".nsewdrag").getBoundingClientRect();
  const x = layout.xaxis.d2p(trace.x[last]), y = layout.yaxis.d2p(trace.y[last]);
  return [box.left + x, box.top + y];
}"""


@pytest.fixture
def south_broke_yesterday(model):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = today - timedelta(days=1)
    rule(model, kind="static", lower=0.8, granularity="day")
    regional_traffic(model, -1, {"north": 180, "south": 180}, day0=yesterday)
    regional_traffic(model, 0, {"north": 180, "south": 100}, day0=yesterday)
    jobs_run(model_id=model.pk, now=today)
    user_make("ds", Role.EDITOR)
    return model


def test_from_the_alert_to_its_drivers_to_the_rows_of_the_top_slice(
    live_server, south_broke_yesterday, page
):
    log_in(page, live_server)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/models/churn/alerts/{Alert.objects.get().pk}/")
    # the alert page names the driver, and asks why
    assert "Within region south: -20.0 points" in page.inner_text("#drivers")
    page.screenshot(path=str(SCREENSHOTS / "alert-drivers.png"), full_page=True)
    page.click("#why-link")
    page.wait_for_selector("#why-waterfall .main-svg")
    assert "Accuracy fell 20.0 points" in page.inner_text("#change-sentence")
    first = page.locator("li.driver").first
    assert "within region south, where it fell from 0.90 to 0.50" in first.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "why.png"), full_page=True)
    # the top driver's rows: yesterday's 200 predictions of the south
    first.locator("a.driver-rows").click()
    page.wait_for_selector("#rows td")
    assert "200 rows" in page.inner_text("main")
    assert set(page.locator("#rows td:has-text('south')").all_inner_texts()) != set()
    assert page.console_errors == []


def test_a_chart_point_asks_why_its_window_differed(live_server, south_broke_yesterday, page):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/")
    page.wait_for_selector("#metric-accuracy .main-svg")
    # click yesterday's point (the last one with data) of the accuracy line, where it is drawn
    page.locator("#metric-accuracy").scroll_into_view_if_needed()
    x, y = page.evaluate(POINT_ON_SCREEN, "#metric-accuracy .plot")
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_selector("#rows td")
    page.click("#why-link")
    page.wait_for_selector("#change-sentence")
    assert "Accuracy fell 20.0 points" in page.inner_text("#change-sentence")
    assert page.console_errors == []
