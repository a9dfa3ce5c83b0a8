"""Versions in headless Chromium at 1440x900: every chart marks when a version began serving
(its first prediction, with no rollout recorded), and the compare page says when two versions
served different weeks before it says which is better."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.roles import Role
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import SCREENSHOTS, log_in, user_make
from tests.monitoring.metrics.test_compare_traffic import confounded_rows, ingest

page = browser.page
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREEN = {"width": 1440, "height": 900}
SLOW_PAGE_MS = 120_000  # a cold model page on a shared two-core machine


@pytest.fixture
def switched(model):
    """Four weeks ending yesterday: 1.0.0, two days of a canary, then 1.1.0 alone."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    frame = confounded_rows(start=today - timedelta(days=28))
    ingest(model, frame)
    user_make("ds", Role.EDITOR)
    return frame


def mark_x(page, chart: str, label: str) -> str:
    """Where the chart draws the vertical mark whose note reads `label`."""
    return page.evaluate(
        """([chart, label]) => {
            const plot = document.querySelector(`#${chart} .plot`);
            const note = plot.layout.annotations.find((a) => a.text === label);
            return note ? note.x : null;
        }""",
        [chart, label],
    )


def test_every_chart_of_the_model_page_marks_when_the_new_version_began(
    live_server, switched, page
):
    page.set_viewport_size(SCREEN)
    page.set_default_timeout(SLOW_PAGE_MS)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/")
    page.wait_for_selector("#metric-accuracy .main-svg")
    first = switched[switched.version == "1.1.0"]["hour"].min().to_pydatetime()
    for chart in ("metric-accuracy", "metric-predictions", "drift-heatmap", "drift-share"):
        page.wait_for_selector(f"#{chart} .main-svg")
        shown = page.locator(f"#{chart} .annotation-text", has_text="1.1.0 began serving")
        assert shown.count() == 1, chart
        assert datetime.fromisoformat(mark_x(page, chart, "1.1.0 began serving")) == first
    page.locator("#metric-accuracy").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "version-start-mark.png"))
    # the first version began the data: it is not a change, so it is not marked
    assert page.locator(".annotation-text", has_text="1.0.0 began serving").count() == 0


def test_the_feature_page_marks_when_the_new_version_began(live_server, switched, page):
    page.set_viewport_size(SCREEN)
    page.set_default_timeout(SLOW_PAGE_MS)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/features/age/")
    page.wait_for_selector("#feature-drift .main-svg")
    shown = page.locator("#feature-drift .annotation-text", has_text="1.1.0 began serving")
    assert shown.count() == 1


def test_the_compare_page_says_the_versions_served_different_weeks(live_server, switched, page):
    page.set_viewport_size(SCREEN)
    page.set_default_timeout(SLOW_PAGE_MS)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/compare/?metric=accuracy")
    page.wait_for_selector("#compare-trend .main-svg")
    page.screenshot(path=str(SCREENSHOTS / "compare-confound.png"))
    note = page.inner_text("#confound")
    base = switched[switched.version == "1.0.0"]["at"]
    cand = switched[switched.version == "1.1.0"]["at"]
    assert f"1.0.0 served {base.min().day}" in note and f"1.1.0 served {cand.min().day}" in note
    assert "the difference may be the customers, not the model" in note
    # the verdict over all traffic blames the candidate; on the shared traffic it does not
    assert "worse by" in page.inner_text("#verdict [role=status]")
    shared = page.inner_text("#shared-verdict")
    assert shared.startswith("On the traffic they shared, no clear difference on Accuracy")
    assert page.locator("#shared-comparison tbody tr").count() == 2
    assert page.locator("#compare-trend .annotation-text", has_text="1.1.0 began serving").count()
