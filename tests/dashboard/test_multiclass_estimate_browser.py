"""A multiclass model's page in headless Chromium at 1440x900: its accuracy and macro F1 charts
draw the estimate from the per-class scores (dashed, with its band) beside the realised line,
and the days still waiting for their outcomes show the estimate instead of nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from accounts.roles import Role
from factory.services import model_create
from monitoring.jobs import jobs_run
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import SCREENSHOTS, log_in, user_make
from tests.monitoring.metrics.test_estimates_multiclass import ingest, rows

page = browser.page
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def iris(db):
    """Ten days of a three-class model's scored predictions: the first seven labelled (they
    calibrate), the last three still without outcomes."""
    model = model_create(name="iris", task="multiclass_classification")
    first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first -= timedelta(days=10)
    rng = np.random.default_rng(31)
    for d in range(10):
        scores, predicted, outcome = rows(rng, 240, shift=d / 10)
        labelled = np.full(len(scores), d < 7)
        ingest(model, first + timedelta(days=d), scores, predicted, outcome, labelled, f"d{d}")
    jobs_run(model_id=model.pk)
    user_make("ds", Role.EDITOR)
    return model


@pytest.mark.parametrize(("metric", "words"), [("accuracy", "Accuracy"), ("macro_f1", "Macro F1")])
def test_multiclass_charts_draw_the_estimate_beside_the_realised_line(
    live_server, iris, page, metric, words
):
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/iris/?granularity=day")
    chart = page.locator(f"#metric-{metric}")
    page.wait_for_selector(f"#metric-{metric} .main-svg")
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=str(SCREENSHOTS / f"model-multiclass-estimate-{metric}.png"))
    page.screenshot(path=str(SCREENSHOTS / f"model-multiclass-{metric}-screen.png"))
    figure = json.loads(page.inner_text(f"#metric-{metric}-data"))
    traces = {t["name"]: t for t in figure["data"]}
    estimate = next(t for name, t in traces.items() if "estimated before outcomes" in name)
    realised = next(t for name, t in traces.items() if name.startswith(words) and t is not estimate)
    assert estimate["line"]["dash"] == "dash" and "dash" not in realised["line"]
    assert "estimate's 95% band" in traces
    known = {x for x, y in zip(realised["x"], realised["y"], strict=True) if y is not None}
    assert set(estimate["x"]) - known  # the unlabelled days
    assert "Dashed: estimated from the scores alone" in chart.inner_text()
    assert page.console_errors == []
