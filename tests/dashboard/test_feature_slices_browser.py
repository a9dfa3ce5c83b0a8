"""The feature page's metric by the feature's deciles over time, in headless Chromium: the
heatmap shows where and from when accuracy broke, each cell equal to the accuracy of that
decile on that day as pandas computes it on the raw rows (the page reads the stored day
slice aggregates only); a metric the slices cannot show is a 400 naming it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from accounts.roles import Role
from common.time import day_floor
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import SliceBins
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import SCREENSHOTS, log_in, user_make

page = browser.page  # the browser fixture, shared
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
DAYS, PER_DAY = 10, 300
BREAK_DAY, OLD = 6, 65  # from this day on, the model is right for older customers 40% of the time


def broken_for_the_old(model, now: datetime) -> pd.DataFrame:
    """DAYS whole days before today of predictions with a numerical `age`; right 90% of the
    time, but 40% for ages over OLD from BREAK_DAY on. Every outcome has arrived."""
    rng = np.random.default_rng(8)
    start = day_floor(now) - timedelta(days=DAYS)
    n = DAYS * PER_DAY
    day = np.repeat(np.arange(DAYS), PER_DAY)
    seconds = rng.uniform(0, 86399, n)
    at = [
        start + timedelta(days=int(d), seconds=float(s)) for d, s in zip(day, seconds, strict=True)
    ]
    age = rng.uniform(18, 80, n).round(1)
    chance = np.where((day >= BREAK_DAY) & (age >= OLD), 0.4, 0.9)
    right = rng.uniform(size=n) < chance
    predicted = rng.integers(0, 2, n)
    actual = np.where(right, predicted, 1 - predicted)
    predictions = [
        {
            "prediction_id": f"p-{i}",
            "timestamp": at[i].isoformat(),
            "model_version": "1.0.0",
            "prediction": int(predicted[i]),
            "score": 0.7 if predicted[i] else 0.3,
            "features": {"age": float(age[i])},
        }
        for i in range(n)
    ]
    outcomes = [
        {
            "prediction_id": f"p-{i}",
            "observed_at": min(at[i] + timedelta(hours=1), now).isoformat(),
            "outcome": int(actual[i]),
        }
        for i in range(n)
    ]
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    jobs_run(model_id=model.pk, now=now)
    return pd.DataFrame(
        {"day": [day_floor(t) for t in at], "age": age, "correct": predicted == actual}
    )


def pandas_cells(rows: pd.DataFrame, edges: np.ndarray) -> pd.DataFrame:
    """Accuracy per decile (on the model's frozen edges, `[a, b)`) per day, by pandas."""
    decile = pd.cut(rows["age"], [-np.inf, *edges, np.inf], right=False, labels=False)
    return rows.assign(decile=decile).pivot_table(
        index="decile", columns="day", values="correct", aggfunc="mean"
    )


def test_the_feature_page_shows_accuracy_by_decile_per_day(live_server, model, page):
    # given
    now = datetime.now(UTC)
    rows = broken_for_the_old(model, now)
    edges = np.frombuffer(bytes(SliceBins.objects.get(model=model, name="age").edges), "<f8")
    expected = pandas_cells(rows, edges)
    user_make("ds", Role.VIEWER)
    log_in(page, live_server)
    # when
    page.goto(f"{live_server.url}/models/churn/features/age/?metric=accuracy")
    page.wait_for_selector("#feature-slices .plot .main-svg")
    page.locator("#slices").scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "feature-slices.png"))
    # then: one row per decile, one column per day, each cell pandas' accuracy there
    shown = page.evaluate(
        "(() => { const t = document.querySelector('#feature-slices .plot').data[0];"
        " return {x: t.x, y: t.y, z: t.z}; })()"
    )
    assert len(shown["y"]) == edges.size + 1 and shown["y"][0].startswith("(-inf")
    assert [pd.Timestamp(x) for x in shown["x"]] == [pd.Timestamp(d) for d in expected.columns]
    z = np.array(shown["z"], dtype=float)
    np.testing.assert_allclose(z, expected.to_numpy(), atol=1e-6)
    # and where it broke stands out: the deciles of ages over OLD, from BREAK_DAY on
    broken = [i for i in range(1, edges.size + 1) if edges[i - 1] >= OLD]
    assert broken and z[broken, BREAK_DAY:].mean() < 0.5 < 0.85 < z[:, :BREAK_DAY].mean()
    # the picker offers the metrics in words; the chart names the metric, never its key
    options = page.locator("#slice-metric select[name=metric] option").all_inner_texts()
    assert "Accuracy" in options and "positive_rate" not in " ".join(options)
    assert "Accuracy by age decile, per day" in page.inner_text("#feature-slices")
    assert page.console_errors == []


def test_a_metric_the_slices_cannot_show_is_a_400_naming_it(model, client):
    user_make("ds", Role.VIEWER)
    client.login(username="ds", password=browser.PASSWORD)
    broken_for_the_old(model, datetime.now(UTC))
    response = client.get("/models/churn/features/age/", {"metric": "roc_auc"})
    assert response.status_code == 400
    text = response.content.decode()
    assert "metric &#x27;roc_auc&#x27;" in text and "accuracy" in text.split("show", 1)[1]
