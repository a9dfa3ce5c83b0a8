"""The factory pages in Chromium: rollouts marked on the charts, versions one click away."""

from __future__ import annotations

import pytest

from factory.rollouts import rollout_create
from factory.services import version_register
from tests.dashboard.test_browser import SCREENSHOTS, log_in, model_with_data, page  # noqa: F401
from tests.factory.conftest import LINEAGE, lineage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def deployed(model_with_data):  # noqa: F811
    # ORM work before `page` starts Playwright's loop, whose context would get its own connection
    model = model_with_data
    version_register(model=model, version="1.0.0", lineage=LINEAGE)  # logged first, now registered
    v2 = version_register(model=model, version="2.0.0", lineage=lineage(accuracy=0.9)).version
    rollout_create(model=model, version=v2, traffic_percent=100, note="switch", actor="user:ds")
    return model


def test_rollouts_are_marked_on_the_charts_and_versions_are_browsable(
    live_server,
    deployed,
    page,  # noqa: F811
):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/")
    page.wait_for_selector("#metric-accuracy .main-svg")
    assert "rollout 2.0.0 100%" in page.inner_text("#metric-accuracy")
    page.screenshot(path=str(SCREENSHOTS / "model-rollouts.png"), full_page=True)
    page.click("a:text('Versions')")
    page.click("a:text('2.0.0')")
    page.wait_for_selector("#comparison")
    assert "0.9000" in page.inner_text("#comparison")
    page.screenshot(path=str(SCREENSHOTS / "version.png"), full_page=True)
    page.click("a:text('Rollouts')")
    assert "switch" in page.inner_text("#history") and "user:ds" in page.inner_text("#history")
    page.wait_for_load_state("networkidle")  # no request in flight when the server stops
    assert page.console_errors == []
