"""A canary in its first days, before its outcomes, in headless Chromium: the version page
and the compare page show its estimate and say it is one, with when the outcomes arrive."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from accounts.roles import Role
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import SCREENSHOTS, log_in, user_make
from tests.dashboard.test_estimates_pages import arrival_days, canary_before_outcomes, said_days

page = browser.page  # the browser fixture, shared
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_canary_is_shown_and_compared_on_its_estimate(live_server, model, page):
    # given: production for two weeks, a canary for the last 40 hours without its outcomes
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    scenario = canary_before_outcomes(model, now)
    days = arrival_days(scenario)
    user_make("ds", Role.VIEWER)
    log_in(page, live_server)
    # when: the canary's version page
    page.goto(f"{live_server.url}/models/churn/versions/2/")
    page.wait_for_selector("#estimates")
    page.screenshot(path=str(SCREENSHOTS / "version-estimates.png"), full_page=True)
    # then: its estimates, said as such, with when the outcomes arrive
    note = page.inner_text("#estimate-note")
    assert note.startswith("Estimated from scores; outcomes arrive in about")
    assert abs(said_days(note) - days) <= 0.75
    table = page.inner_text("#estimate-table")
    for label in ("Accuracy", "ROC AUC", "Precision", "Recall"):
        assert label in table
    assert "not yet known" in table or "%" in table
    # when: compared with production
    page.goto(f"{live_server.url}/models/churn/compare/?metric=accuracy&baseline=1&candidate=2")
    page.wait_for_selector("#estimate-verdict")
    page.screenshot(path=str(SCREENSHOTS / "compare-canary-estimate.png"))
    # then: the first thing said is that the canary is judged on its estimate
    lead = page.inner_text("#verdict .lead")
    assert lead.startswith("Judged on its estimate. The candidate 2: only ")
    assert abs(said_days(lead) - days) <= 0.75
    assert page.inner_text("[role=status]").startswith("On the outcomes in so far, ")
    assert page.console_errors == []
