"""User-made names in charts, in headless Chromium: shown as typed, once, never as markup."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from accounts.roles import Role
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from tests.conftest import outcome, prediction
from tests.dashboard.test_browser import log_in, page, user_make  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LINK = '<a href="https://evil.example/">x</a>'
IMG = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def hostile_names(model):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    records = [
        prediction(i, at=now - timedelta(hours=i), features={"age": i % 50, LINK: "ab"[i % 2]})
        for i in range(120)
    ]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    labels = [
        outcome(i, at=now, outcome=int(i % 3 > 0), values={LINK: 1.0, IMG: 2.0}) for i in range(100)
    ]
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    user_make("ds", Role.EDITOR)
    return model


def figure_titles(html: str) -> list[str]:
    scripts = re.findall(r'<script id="[^"]+" type="application/json">(.*?)</script>', html)
    return [json.loads(body)["layout"]["title"]["text"] for body in scripts]


def test_names_with_markup_show_as_typed_in_chart_titles(hostile_names, page, live_server):  # noqa: F811
    # given
    log_in(page, live_server)
    # when
    page.goto(f"{live_server.url}/models/churn/")
    page.wait_for_selector(".gtitle")
    shown = page.locator(".gtitle").all_text_contents()
    sent = figure_titles(page.content())
    # then: the figure carries each name escaped once, and the reader sees it as typed
    for name in (LINK, IMG):
        assert f"{html.escape(name, quote=False)} per labelled prediction per day" in sent
        assert f"{name} per labelled prediction per day" in shown
    assert not page.locator(".plot a[href*='evil'], .plot img").count()


def test_a_feature_name_with_markup_shows_as_typed_on_its_page(hostile_names, page, live_server):  # noqa: F811
    log_in(page, live_server)
    page.goto(f"{live_server.url}/models/churn/features/{quote(LINK, safe='')}/")
    page.wait_for_selector(".gtitle")
    shown = page.locator(".gtitle").all_text_contents()
    assert f"{LINK}: reference against the span shown (every version)" in shown
    assert not page.locator(".plot a[href*='evil']").count()
    assert LINK in page.locator("h1").inner_text()
