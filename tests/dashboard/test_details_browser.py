"""Honest headlines and readable details in headless Chromium: the business sentence on a
noisy week beside immature ones, and no raw metric key in the visible text of any page of
the demo (checked against the registry's keys: overview, the model page in each window and
scope, its tabs, the factory pages, alerts, an alert, rules, compare, a feature, quarantine,
the outbox and its e-mail), nor an internal value (`__all__`, `too_low`) on any of them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from accounts.roles import Role
from monitoring.demo import demo_create
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.series import metric_names
from monitoring.metrics.windows import window_start
from monitoring.models import Alert, AlertRule, OutboxEmail, QuarantinedRecord
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import SCREENSHOTS, log_in, user_make
from tests.dashboard.test_business import NOW, weekly_revenue
from tests.dashboard.test_model_page_browser import COLD_PAGE_MS
from tests.monitoring.alerts.test_outbox import OUTBOX

page = browser.page  # the browser fixture, shared
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
INTERNAL_VALUES = re.compile(
    r"\b(__all__|too_low|too_high|no_data|too_few|no_baseline|wasserstein|jensenshannon|chisquare)\b"
)
# The page's text a person reads, without <code> (API calls and JSON shown to developers keep
# their keys: that is where a key belongs).
WORDS_SHOWN = "document.querySelectorAll('code').forEach(e => e.remove()); document.body.innerText"
PICTURED = ("audit", "channels", "outbox-email")  # the README's pictures no other test takes


def same_moment_of_the_week(now: datetime) -> datetime:
    """The latest moment at or before `now` that sits where test_business.NOW (Wednesday noon)
    sits in its week: the business sentences depend on how far into a week the page is read,
    so the data and the page's clock are set there, whatever the weekday the test runs on."""
    into_week = NOW - window_start(NOW, "week")
    moment = window_start(now, "week") + into_week
    return moment if moment <= now else moment - timedelta(weeks=1)


def test_the_business_sentence_on_a_noisy_week_beside_immature_ones(live_server, model, page):
    # given: five weeks of revenue around 50, then two younger weeks around 30 whose outcomes
    # (1 to 20 days late) are still arriving, as seen on a Wednesday noon (within the last
    # week, so the session cookie holds)
    now = same_moment_of_the_week(timezone.now())
    weekly_revenue(model, {6: 50, 5: 50, 4: 50, 3: 50, 2: 30, 1: 30}, now=now)
    user_make("ds", Role.VIEWER)
    log_in(page, live_server)
    page.set_viewport_size({"width": 1440, "height": 900})
    # when: the pages are read at that moment (the server's clock frozen there, moving on)
    with freeze_time(now, tick=True, ignore=["playwright", "asyncio", "greenlet"]):
        business_pages_checked(live_server, page)


def business_pages_checked(live_server, page) -> None:
    """The business page and the model page's weeks, read as the test above sets them up."""
    page.goto(f"{live_server.url}/models/churn/business/")
    page.wait_for_selector("#kpi-revenue .plot .main-svg")
    page.screenshot(path=str(SCREENSHOTS / "business-noisy-week.png"), full_page=True)
    # then: the headline compares the latest mature weeks and calls their difference noise
    headline = page.inner_text("#kpi-revenue .headline")
    assert "the latest mature one" in headline and "within the noise" in headline
    assert not re.search(r"\b(up|down)\b", headline)
    # and says the two weeks after it are not yet known, each with its share of outcomes in
    assert re.search(
        r"The weeks of [^.]+\(\d+% of its expected outcomes so far\) and [^.]+\(\d+% of its "
        r"expected outcomes so far\) are not yet known\.",
        headline,
    )
    # the real fall is named, as not mature yet; the young weeks are said, never compared
    assert re.search(
        r"down from [\d.,]+ to [\d.,]+", page.inner_text("#kpi-revenue .largest-change")
    )
    assert "not mature yet" in page.inner_text("#kpi-revenue .largest-change")
    maturity = page.inner_text("#label-maturity")
    assert "weeks are not mature yet" in maturity and "share of their expected outcomes" in maturity
    # the total is never shown as complete: the young weeks' part is projected
    assert "That total is incomplete" in page.inner_text("#kpi-revenue")
    # the chart shades the immature weeks with the share of their expected outcomes
    assert re.search(r"\d+% of expected outcomes", page.inner_text("#kpi-revenue .plot"))
    # the chart's caption is the chart's own, not the sentence again
    assert "the latest mature one" not in page.inner_text("#kpi-revenue figcaption")
    assert page.console_errors == []
    # and the model page marks the revenue sum of those weeks incomplete
    page.goto(f"{live_server.url}/models/churn/?granularity=week")
    page.wait_for_selector(".plot .main-svg")
    page.screenshot(path=str(SCREENSHOTS / "model-immature-weeks.png"), full_page=True)
    page.locator("#business").screenshot(path=str(SCREENSHOTS / "model-business-values.png"))
    page.locator("#performance").screenshot(path=str(SCREENSHOTS / "model-performance.png"))
    business = page.locator("#business")
    assert "incomplete: " in business.inner_text()
    # with each of their sums projected to full maturity (a trace of its own, not the line)
    names = page.evaluate(
        "[...document.querySelectorAll('#business .plot[data-figure]')]"
        ".flatMap(p => p.data.map(t => t.name))"
    )
    assert "projected once all outcomes are in" in names


def test_no_raw_metric_key_in_any_page_of_the_demo(live_server, db, page, settings):
    settings.EMAIL_BACKEND = OUTBOX  # the embedded mode: the demo's e-mail kept in the outbox
    model = demo_create()
    jobs_run(model_id=model.pk)
    records_ingest(
        model=model,
        kind="predictions",
        enqueue_jobs=False,
        records=[{"prediction_id": "broken", "score": 3}],
    )
    user_make("ds", Role.ADMIN)
    keys = [k for k in metric_names(model) if "_" in k or ":" in k]
    assert "roc_auc" in keys and "value:revenue" in keys and "drift:tenure_months" in keys
    alert = Alert.objects.filter(rule__metric="roc_auc").first()
    window = f"start={alert.window_start.isoformat()}&end={alert.window_end.isoformat()}"
    rule = AlertRule.objects.get(metric="accuracy", kind="static")
    email = OutboxEmail.objects.get()
    record = QuarantinedRecord.objects.get()
    pages = {
        "overview": "/",
        "alerts": "/alerts/?state=all",
        "model": "/models/churn/",
        # the model page's windows and scopes: every chart title, axis and note
        "model-hours": "/models/churn/?granularity=hour&days=7",
        "model-weeks": "/models/churn/?granularity=week",
        "model-segment": "/models/churn/?segment=mobile",
        "model-version": "/models/churn/?version=1.1.0",
        "business-weeks": "/models/churn/business/?granularity=week",
        "rule-new": "/models/churn/rules/new",
        "quarantine-record": f"/models/churn/quarantine/{record.pk}/",
        "outbox": "/outbox/",
        "outbox-email": f"/outbox/{email.pk}/",
        "business": "/models/churn/business/",
        "rows": f"/models/churn/rows/?metric=roc_auc&{window}".replace("+", "%2B"),
        "quarantine": "/models/churn/quarantine/",
        "compare": "/models/churn/compare/?metric=roc_auc",
        "versions": "/models/churn/versions/",
        "version": "/models/churn/versions/1.1.0/",
        "rollouts": "/models/churn/rollouts/",
        "retrain": "/models/churn/retrain/",
        "audit": "/models/churn/audit/",
        "channels": "/models/churn/channels/",
        "alert": f"/models/churn/alerts/{alert.pk}/",
        "rule": f"/models/churn/rules/{rule.pk}/",
        "feature": "/models/churn/features/tenure_months/",
    }
    log_in(page, live_server)
    page.set_default_timeout(COLD_PAGE_MS)
    found = {}
    for name, path in pages.items():
        response = page.goto(live_server.url + path)
        assert response.status == 200, name
        page.wait_for_load_state("load")
        if name in PICTURED:
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=name != "outbox-email")
        text = page.evaluate(WORDS_SHOWN)
        raw = [k for k in keys if re.search(rf"(?<![\w:]){re.escape(k)}(?!\w)", text)]
        internal = INTERNAL_VALUES.findall(text)
        if raw or internal:
            found[name] = raw + internal
    assert found == {}
    # the rows page opened from the alert shows the slice's ROC AUC
    page.goto(live_server.url + pages["rows"])
    assert page.inner_text("#slice-metric").startswith("ROC AUC of these predictions: ")
    page.screenshot(path=str(SCREENSHOTS / "rows-behind-a-metric.png"))
    assert page.console_errors == []
