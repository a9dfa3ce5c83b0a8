"""Readable details: durations in words, features and values as table columns, audit entries
as before-and-after tables, no internal value on the page, the rows page's metric, versions
by their first prediction, and the model's tab row on every factory page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.html import strip_tags

from common.time import duration_words
from factory.models import AuditEntry
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.windows import window_start
from tests.conftest import outcome, prediction

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (538998, "6 d 5 h"),  # the delay the rows page used to show as "538998 s"
        (86400, "1 d"),
        (12000, "3 h 20 min"),
        (3599.9, "59 min 59 s"),
        (59.6, "59 s"),
        (0.4, "0.4 s"),
    ],
)
def test_durations_read_in_words(seconds, words):
    assert duration_words(seconds) == words


@pytest.fixture
def day_of_rows(model):
    """A whole day of 40 predictions, 30 with an outcome a day and a half later, 20 right."""
    day = window_start(timezone.now() - timedelta(days=3), "day")
    records = [
        prediction(i, at=day + timedelta(minutes=30 * i), segment="web", features={"age": i})
        for i in range(40)
    ]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    outcomes = [
        outcome(
            i,
            at=day + timedelta(minutes=30 * i, hours=36),
            outcome=int(i < 20),
            values={"revenue": 10.5},
        )
        for i in range(30)
    ]
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    return day


def visible(html: str) -> str:
    return strip_tags(html)


def test_the_rows_page_reads_as_a_table_with_its_metric(model, day_of_rows, viewer):
    start, end = day_of_rows, day_of_rows + timedelta(days=1)
    query = {"metric": "accuracy", "start": start.isoformat(), "end": end.isoformat()}
    html = viewer.get("/models/churn/rows/", query).content.decode()
    # the metric of the rows listed: 20 right of 30 with an outcome (every prediction is 1)
    assert "Accuracy of these predictions: 66.7%" in html and "from n = 30 observations" in html
    # features and values are columns; delays are words; nothing internal shows
    header = re.search(
        r"<table class=\"grid small\" id=\"rows\">\s*<thead>(.*?)</thead>", html, re.S
    )[1]
    assert "<th>age</th>" in header and "<th>revenue</th>" in header
    assert "1 d 12 h" in html and " s</td>" not in html
    text = visible(html)
    assert "__all__" not in text and "{'" not in text and "{&#x27;" not in html


def test_the_audit_log_shows_changes_as_tables_in_words(model, viewer):
    AuditEntry.objects.create(
        model=model,
        actor="ana",
        action="Version.promote",
        subject="2.0.0",
        before={"traffic_percent": 10, "segments": ["web"]},
        after={"traffic_percent": 50, "segments": ["web"]},
    )
    html = viewer.get("/models/churn/audit/").content.decode()
    assert "Version promote" in html
    assert re.search(
        r"<th>traffic percent</th><td class=\"changed\">10</td>"
        r"<td class=\"changed\">50</td>",
        html,
    )
    assert re.search(r"<th>segments</th><td>web</td><td>web</td>", html)  # unchanged
    assert "{'" not in visible(html) and "traffic_percent" not in visible(html)


def test_versions_show_their_first_prediction_and_explain_a_missing_reference(
    model, day_of_rows, viewer
):
    listing = viewer.get("/models/churn/versions/").content.decode()
    assert "First prediction (UTC)" in listing
    assert f"{day_of_rows:%Y-%m-%d} 00:00" in listing  # the first prediction's hour
    page = viewer.get("/models/churn/versions/1.0.0/").content.decode()
    assert f"First prediction in the hour of {day_of_rows:%Y-%m-%d} 00:00 UTC" in page
    assert "No reference registered, so none is shown" in page


@pytest.mark.parametrize(
    "path", ["versions/", "versions/1.0.0/", "rollouts/", "retrain/", "audit/"]
)
def test_factory_pages_keep_the_model_tab_row(model, day_of_rows, viewer, path):
    html = viewer.get(f"/models/churn/{path}").content.decode()
    tabs = re.search(r'<nav class="tabs".*?</nav>', html, re.S)[0]
    assert "Health" in tabs and "Business" in tabs
    assert re.search(r'aria-current="page">Versions<', tabs)
