"""The drift and data-quality sections and the feature page in headless Chromium, on the demo:
they render with no console error, and a data scientist gets from the model page to the
drifted feature in one click. Screenshots as in test_browser."""

from __future__ import annotations

import pytest

from accounts.roles import Role
from monitoring.demo import demo_create
from monitoring.jobs import jobs_run
from tests.dashboard.test_browser import SCREENSHOTS, log_in, page, user_make  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(live_server, db):
    model = demo_create()
    jobs_run(model_id=model.pk)
    user_make("ds", Role.EDITOR)
    return model


def test_from_the_drift_heatmap_to_the_drifted_feature(live_server, demo, page):  # noqa: F811
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/")
    page.wait_for_selector("#drift-heatmap .main-svg")
    page.wait_for_selector("#drift-share .main-svg")
    assert "Drift of versions 1.0.0, 1.1.0 per feature and day" in page.inner_text("#drift-heatmap")
    # Without a picked version: the model's whole traffic, against one baseline.
    assert "Every version's predictions (1.0.0, 1.1.0)" in page.inner_text("#drift")
    page.locator("#drift").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "model-drift-1440x900.png"))
    table = page.inner_text("#drift-features")
    assert "tenure_months" in table and "UTC" in table  # drifting since a date
    page.locator("#drift").screenshot(path=str(SCREENSHOTS / "model-drift.png"))
    quality = page.inner_text("#quality")
    assert "Missing" in quality and "Out of the reference range" in quality
    page.locator("#quality").screenshot(path=str(SCREENSHOTS / "model-quality.png"))
    assert "smallest change this chart can show" in page.inner_text("#metric-accuracy")
    page.click("#drift-features a:text('tenure_months')")
    page.wait_for_selector("#feature-distribution .main-svg")
    page.wait_for_selector("#feature-drift .main-svg")
    assert "feature tenure_months" in page.inner_text("h1")
    assert "drifted" in page.inner_text("#verdict")
    assert page.locator("#feature-distribution .legendtext").count() == 2
    page.screenshot(path=str(SCREENSHOTS / "feature.png"), full_page=True)
    assert page.console_errors == []


def test_the_feature_page_per_segment_and_version(live_server, demo, page):  # noqa: F811
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/features/plan/")
    page.wait_for_selector("#feature-distribution .main-svg")
    page.select_option("#scope select[name=segment]", "mobile")
    page.select_option("#scope select[name=version]", "1.0.0")
    page.click("#scope button[type=submit]")
    page.wait_for_selector("#feature-drift .main-svg")
    assert "segment “mobile”" in page.inner_text("#feature-drift")
    assert "version 1.0.0" in page.inner_text("#feature-drift")
    assert page.locator("#segment-drift a[aria-current=true]").inner_text() == "mobile"
    assert page.console_errors == []
