"""The business page's sentences: a comparison of mature weeks only, beyond or within the
noise by Welch's test (checked against SciPy on the same values), the largest real change
named, immature weeks said and never compared, the total and the open business alerts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone
from scipy import stats

from dashboard.sections.business import business_page_get
from monitoring.alerts.evaluate import rules_evaluate
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.windows import window_start
from monitoring.models import AlertRule
from tests.conftest import outcome, prediction

pytestmark = pytest.mark.django_db
PER_WEEK = 150
MAX_DELAY_DAYS = 20  # outcomes arrive 1 to 20 days late: with NOW a Wednesday noon, last week
# and the week before have under 80% of their outcomes (their share said), older weeks over
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def weekly_revenue(
    model, means: dict[int, float], *, now, seed: int = 3, eventual: dict | None = None
) -> dict[int, list]:
    """PER_WEEK predictions in each week `w` weeks before this one, their revenue drawn around
    means[w]; outcomes arrive 1 to 12 days later, only those already arrived by `now` are sent.
    Returns the revenue values that arrived, per week."""
    rng = np.random.default_rng(seed)
    this_week = window_start(now, "week")
    predictions, outcomes, arrived = [], [], {w: [] for w in means}
    for weeks_ago, mean in means.items():
        start = this_week - timedelta(weeks=weeks_ago)
        for j in range(PER_WEEK):
            i = weeks_ago * 10_000 + j
            at = start + timedelta(seconds=float(rng.uniform(0, 7 * 86400 - 1)))
            seen = at + timedelta(days=float(rng.uniform(1, MAX_DELAY_DAYS)))
            revenue = round(float(rng.normal(mean, 10)), 2)
            if at >= now:
                continue
            predictions.append(prediction(i, at=at))
            if eventual is not None:
                eventual.setdefault(weeks_ago, []).append(revenue)
            if seen <= now:
                outcomes.append(outcome(i, at=seen, values={"revenue": revenue}))
                arrived[weeks_ago].append(revenue)
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    jobs_run(model_id=model.pk, now=now)
    return arrived


def welch_interval(before: list[float], after: list[float]) -> tuple[float, float, float]:
    """SciPy's Welch test of after - before: (difference, interval low, interval high)."""
    result = stats.ttest_ind(after, before, equal_var=False)
    interval = result.confidence_interval(0.95)
    return float(np.mean(after) - np.mean(before)), interval.low, interval.high


def test_a_noisy_mature_week_is_not_news_and_the_immature_fall_is_named(model):
    # given: five weeks around 50, then two younger weeks around 30 (not mature yet)
    now = NOW
    eventual = {}
    means = {6: 50, 5: 50, 4: 50, 3: 50, 2: 30, 1: 30}
    arrived = weekly_revenue(model, means, now=now, eventual=eventual)
    # when
    page = business_page_get(model=model, granularity="week", now=now)
    (kpi,) = page.kpis
    # then: the headline compares the latest mature weeks (3 and 4 weeks ago), by Welch's
    # test as SciPy computes it, and calls it noise
    difference, low, high = welch_interval(arrived[4], arrived[3])
    assert "the latest mature one" in kpi.headline
    assert f"its interval ({low:,.2f} to {high:,.2f}) holds zero" in kpi.headline
    assert f"(a difference of {difference:+,.2f}), within the noise" in kpi.headline
    assert not re.search(r"\b(up|down)\b", kpi.headline)  # noise is never told as a move
    # the largest real change of the period: the fall into the first young week, said to be
    # not mature yet
    fall = kpi.largest_change
    assert f"down from {np.mean(arrived[3]):,.2f} to {np.mean(arrived[2]):,.2f}" in fall
    assert "not mature yet" in fall
    # the young weeks are named as such, and the total is every known revenue
    assert "The last 2 weeks are not mature yet" in page.maturity
    # and the two weeks after it are not yet known, each with the share of its outcomes in
    assert re.search(
        r"The weeks of [^.]+\(\d+% of its expected outcomes so far\) and [^.]+\(\d+% of its "
        r"expected outcomes so far\) are not yet known\.",
        kpi.headline,
    )
    # the young weeks' revenue is incomplete: its projection holds what will come in the end
    young_sum = sum(eventual[1]) + sum(eventual[2])
    found = re.search(r"project to ([\d,.]+) once .*interval ([\d,.]+) to ([\d,.]+)", kpi.total)
    low, high = (float(found.group(i).replace(",", "")) for i in (2, 3))
    assert "That total is incomplete: the last 2 weeks" in kpi.total
    assert low <= young_sum <= high
    every = [v for values in arrived.values() for v in values]
    assert f"revenue {sum(every):,.2f} in all from {len(every):,} known results" in kpi.total


def test_a_real_change_between_mature_weeks_says_so(model):
    now = NOW
    arrived = weekly_revenue(model, {5: 50, 4: 50, 3: 40}, now=now)
    (kpi,) = business_page_get(model=model, granularity="week", now=now).kpis
    difference, low, high = welch_interval(arrived[4], arrived[3])
    assert difference < 0
    assert f"down {abs(difference):,.2f} from {np.mean(arrived[4]):,.2f}" in kpi.headline
    assert f"a real change, beyond its interval ({low:,.2f} to {high:,.2f})" in kpi.headline


def test_without_two_mature_weeks_nothing_is_compared(model):
    now = NOW
    weekly_revenue(model, {2: 50, 1: 20}, now=now)
    (kpi,) = business_page_get(model=model, granularity="week", now=now).kpis
    assert kpi.headline.startswith("Not yet known: no two mature weeks to compare yet")


def test_open_business_alerts_are_listed_critical_first(model, viewer):
    now = NOW
    weekly_revenue(model, {5: 50, 4: 50, 3: 20}, now=now)
    for severity in ("warning", "critical"):
        AlertRule.objects.create(
            model=model,
            metric="value:revenue",
            kind="static",
            lower=45,
            granularity="week",
            min_count=10,
            severity=severity,
        )
    AlertRule.objects.create(model=model, metric="accuracy", kind="static", upper=0.01)
    rules_evaluate(model_id=model.pk, now=now)
    page = business_page_get(model=model, granularity="week", now=now)
    assert [a["alert"].rule.severity for a in page.alerts] == ["critical", "warning"]
    html = viewer.get("/models/churn/business/").content.decode()
    assert "Open business alerts" in html and "Revenue" in html


def test_the_week_in_progress_is_drawn_as_partial(model):
    # given: three weeks of revenue, this week's so far among them
    now = timezone.now()
    weekly_revenue(model, {2: 50, 1: 50, 0: 50}, now=now)
    # when
    (kpi,) = business_page_get(model=model, granularity="week", now=now).kpis
    # then: this week is an open marker in a hatched area, off the line of whole weeks
    this_week = window_start(now, "week").isoformat()
    traces = {t["name"]: t for t in kpi.chart.figure["data"]}
    assert traces["this week so far"]["marker"]["pattern"]["shape"] == "/"
    assert traces["average revenue per known result, so far"]["x"] == [this_week]
    assert this_week not in traces["average revenue per known result"]["x"]
