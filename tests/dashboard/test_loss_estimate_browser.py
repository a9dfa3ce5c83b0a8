"""A regression model's page in headless Chromium at 1440x900: the MAE chart draws the MAE
estimated before the outcomes (direct loss estimation) dashed with its band beside the
realised line, and the days still waiting for outcomes show the estimate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from accounts.roles import Role
from factory.services import model_create, version_register
from monitoring.jobs import jobs_run
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import SCREENSHOTS, log_in, user_make
from tests.monitoring.metrics.test_loss_estimates import features, ingest, rows

page = browser.page
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREEN = {"width": 1440, "height": 900}


@pytest.fixture
def prices(db):
    """Ten days of a regression model with labelled reference rows; outcomes known for the
    days before the last four."""
    model = model_create(name="prices", task="regression")
    rng = np.random.default_rng(31)
    reference = rows(rng, 1500)
    version_register(
        model=model,
        version="1",
        lineage={"code_version": "a"},
        reference={
            "rows": [
                {
                    "features": features(reference, i),
                    "prediction": float(reference["prediction"][i]),
                    "outcome": float(reference["outcome"][i]),
                }
                for i in range(1500)
            ]
        },
    )
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for d in range(10):
        day = today - timedelta(days=10 - d)
        labelled = np.full(200, d < 6)
        ingest(model, day, rows(rng, 200, shift=d / 20), labelled, f"d{d}")
    jobs_run(model_id=model.pk)
    user_make("ds", Role.EDITOR)
    return model


def test_the_mae_chart_draws_the_estimate_dashed_beside_the_realised_line(
    live_server, prices, page
):
    # when the regression model's page is drawn
    page.set_viewport_size(SCREEN)
    page.set_default_timeout(120_000)
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/prices/")
    page.wait_for_selector("#metric-mae .main-svg")
    chart = page.locator("#metric-mae")
    chart.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "model-loss-estimate.png"))
    # then the estimated MAE is dashed with its band, the realised line solid
    figure = json.loads(page.inner_text("#metric-mae-data"))
    traces = {t["name"]: t for t in figure["data"]}
    estimate = next(t for name, t in traces.items() if name.endswith("estimated before outcomes"))
    realised = traces[estimate["name"].removesuffix(", estimated before outcomes")]
    assert estimate["line"]["dash"] == "dash" and "dash" not in realised["line"]
    assert "estimate's 95% band" in traces
    # and the days without outcomes yet show the estimate instead of nothing
    known = {x for x, y in zip(realised["x"], realised["y"], strict=True) if y is not None}
    assert len(set(estimate["x"]) - known) >= 3
    assert "from a model of the errors fitted on the reference" in chart.inner_text()
    assert page.console_errors == []
