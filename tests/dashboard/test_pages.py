"""The pages' content: overview, model page sections, business view, quarantine, escaping."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from factory.services import model_create
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertRule, Label
from tests.conftest import outcome, prediction

pytestmark = pytest.mark.django_db
XSS = "<script>alert(1)</script>"
XSS_VALUE = '<img src=x onerror="alert(2)">'


def hour_now() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def traffic(model):
    """Six days of predictions, one every 2 hours; the first four days labelled a day later."""
    now = hour_now()
    records = [
        prediction(
            i,
            at=now - timedelta(hours=2 * i),
            segment="web" if i % 2 else XSS,
            features={"age": i % 50, "plan": "basic" if i % 3 else "premium"},
        )
        for i in range(72)
    ]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    labels = [
        outcome(
            i,
            at=now - timedelta(hours=2 * i) + timedelta(days=1),
            outcome=int(i % 4 > 0),
            values={"revenue": float(i), XSS_VALUE: 1.0},
        )
        for i in range(72)
        if i >= 24
    ]
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    AlertRule.objects.create(model=model, metric="accuracy", kind="static", lower=0.9, min_count=5)
    jobs_run(model_id=model.pk)
    return model


def figures(html: str) -> dict[str, dict]:
    scripts = re.findall(r'<script id="([^"]+)-data" type="application/json">(.*?)</script>', html)
    return {dom_id: json.loads(body) for dom_id, body in scripts}


def test_overview_lists_health_alerts_and_a_sparkline(traffic, viewer):
    model_create(name="quiet", task="regression")
    html = viewer.get("/").content.decode()
    assert "churn" in html and "quiet" in html
    row = html[html.index('href="/models/churn/"') :].split("</tr>")[0]
    assert "health-firing" in row
    assert '<span class="state state-firing">1</span>' in row  # one open alert
    assert "<polyline" in row and "Accuracy, last 14 days: latest" in row
    label = row[row.index('class="small muted sparkline-label">') :]  # shown, not only read out
    assert label.split(">")[1].startswith("Accuracy, last 14 days: latest")
    quiet = html[html.index('href="/models/quiet/"') :].split("</tr>")[0]
    assert "health-no_data" in quiet and "never" in quiet


def test_overview_filters_by_health_and_name(traffic, viewer):
    model_create(name="quiet", task="regression")
    firing = viewer.get("/", {"health": "firing"}).content.decode()
    assert "/models/churn/" in firing and "/models/quiet/" not in firing
    no_data = viewer.get("/", {"health": "no_data"}).content.decode()
    assert "/models/quiet/" in no_data and "/models/churn/" not in no_data
    by_name = viewer.get("/", {"q": "UI"}).content.decode()
    assert "/models/quiet/" in by_name and "/models/churn/" not in by_name
    assert "No model matches" in viewer.get("/", {"q": "nothing"}).content.decode()
    assert viewer.get("/", {"health": "sick"}).status_code == 400


def test_model_page_sections_and_charts(traffic, viewer):
    html = viewer.get("/models/churn/").content.decode()
    for section in ("performance", "business", "volume", "alerts", "rules"):
        assert f'id="{section}"' in html
    charts = figures(html)
    assert {
        "metric-accuracy",
        "metric-predictions",
        "metric-label_coverage",
        "label-delay",
        "cohort-coverage",
        "metric-value:revenue",
    } <= set(charts)
    accuracy = charts["metric-accuracy"]
    assert accuracy["layout"]["title"]["text"] == "Accuracy per day"
    assert accuracy["layout"]["xaxis"]["title"]["text"] == "window start (UTC)"
    assert accuracy["layout"]["yaxis"]["title"]["text"] == "Accuracy (%)"
    assert accuracy["layout"]["yaxis"]["tickformat"] == ".0%"  # shares read as percentages
    names = [trace.get("name") for trace in accuracy["data"]]
    assert "95% interval" in names and "alerts" in names
    assert any(s.get("y0") == 0.9 for s in accuracy["layout"]["shapes"])  # the rule's bound
    # The last two days have no labels yet: shaded, with their coverage written on them.
    notes = [a["text"] for a in accuracy["layout"]["annotations"]]
    assert "0% of expected outcomes" in notes
    assert accuracy["layout"]["meta"]["rows_url"].startswith("/models/churn/rows/?metric=accuracy")
    # Text alternative with the latest value.
    assert re.search(
        r'aria-label="Accuracy per day: \d+ daily windows; '
        r"latest complete \([^)]*\) [\d.]+% over n",
        html,
    )


def test_a_first_look_before_the_data_does_not_hide_what_the_traffic_can_show(model, viewer):
    # given a model page seen once while its first predictions were not yet in (the notes on
    # what the traffic can show are kept for the hour)
    viewer.get("/models/churn/")
    now = hour_now()
    records = [prediction(i, at=now - timedelta(hours=i % 96)) for i in range(400)]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    outcomes = [outcome(i, at=now, outcome=i % 3 > 0) for i in range(400)]
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    # when it is seen again within the hour, then the accuracy chart says what it can show
    html = viewer.get("/models/churn/").content.decode()
    assert "the smallest change this chart can show" in html


def test_an_alert_link_lands_on_its_chart(traffic, viewer):
    html = viewer.get("/models/churn/", {"metric": "accuracy"}).content.decode()
    assert 'id="metric-accuracy"' in html
    # the alert row links to it too, in its rule's scope
    assert 'href="/models/churn/?granularity=day#metric-accuracy"' in html


def test_label_delay_comes_from_the_labels_and_outlives_them(traffic, viewer):
    charts = figures(viewer.get("/models/churn/").content.decode())
    delay = charts["label-delay"]["data"][0]
    assert sum(delay["y"]) == Label.objects.count() == 48
    assert delay["y"][delay["x"].index("1 to 2 d")] == 48  # every label came a day later
    # Read from the aggregates: the same once the raw labels are gone (retention).
    Label.objects.all().delete()
    cache.clear()
    after = figures(viewer.get("/models/churn/").content.decode())["label-delay"]["data"][0]
    assert after["y"] == delay["y"]


def test_version_and_segment_pickers_filter_the_charts(traffic, viewer):
    html = viewer.get("/models/churn/", {"segment": "web", "granularity": "week"}).content.decode()
    volume = figures(html)["metric-predictions"]
    # The line of whole weeks, the first week (the data starts within it) and this week so
    # far, each drawn apart: half the predictions are on "web".
    shown = [t for t in volume["data"] if t["name"].startswith("Predictions (count)")]
    assert len(shown) == 3 and sum(v for t in shown for v in t["y"] if v) == 36
    assert "segment" in volume["layout"]["title"]["text"]
    unknown = viewer.get("/models/churn/", {"version": "9.9"})
    assert unknown.status_code == 400 and "no version" in unknown.content.decode()
    assert viewer.get("/models/churn/", {"granularity": "month"}).status_code == 400


def test_a_section_without_data_is_left_out(model, viewer):
    html = viewer.get("/models/churn/").content.decode()
    assert 'id="performance"' not in html and 'id="business"' not in html
    assert "No data yet" in html


def test_user_strings_are_never_rendered_unescaped(traffic, viewer):
    AlertRule.objects.create(
        model=traffic, metric="accuracy", kind="static", lower=0.5, segment=XSS, min_count=1
    )
    pages = [
        viewer.get("/models/churn/"),
        viewer.get("/models/churn/", {"segment": XSS}),
        viewer.get("/models/churn/business/"),
        viewer.get("/models/churn/rows/", {"segment": XSS, "feature": XSS, "category": XSS}),
        viewer.get("/", {"q": XSS}),
    ]
    for response in pages:
        html = response.content.decode()
        assert response.status_code == 200
        assert XSS not in html and XSS_VALUE not in html and "<img src=x" not in html
    segment_page = pages[1].content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in segment_page  # shown, as text
    for figure in figures(segment_page).values():
        assert "<script" not in json.dumps(figure).lower()


def test_business_view_tells_kpis_in_plain_words(traffic, viewer):
    html = viewer.get("/models/churn/business/").content.decode()
    # six days with outcomes a day late: the weeks are told, none compared as news
    assert "average revenue per known result" in html
    assert "no two mature weeks to compare yet" in html or "the latest mature one" in html
    assert "Over the period: revenue" in html and "known results" in html
    for jargon in ("p-value", "confidence interval", "Wilson", "n ="):
        assert jargon not in html
    assert "rule-form" not in html


def test_business_csv_escapes_formulas(model, viewer):
    now = hour_now()
    records_ingest(
        model=model, kind="predictions", records=[prediction(1, at=now)], enqueue_jobs=False
    )
    values = {"=HYPERLINK(1)": 1.0, "+cmd": 2.0, "-sum": 3.0, "@x": 4.0, "revenue": -5.0}
    records_ingest(
        model=model,
        kind="outcomes",
        records=[outcome(1, at=now, values=values)],
        enqueue_jobs=False,
    )
    jobs_run(model_id=model.pk)
    response = viewer.get("/models/churn/business.csv")
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["value", "window_start", "window_end", "average"]
    names = {row[0] for row in rows[1:]}
    assert names == {"'=HYPERLINK(1)", "'+cmd", "'-sum", "'@x", "revenue"}
    revenue = next(row for row in rows[1:] if row[0] == "revenue")
    assert float(revenue[3]) == -5.0  # numbers are numbers, not escaped text


def test_quarantine_page_lists_filters_and_downloads(model, viewer):
    first = records_ingest(
        model=model,
        kind="predictions",
        enqueue_jobs=False,
        records=[{"prediction_id": "a"}, prediction(1, score=7)],
    )
    records_ingest(
        model=model,
        kind="outcomes",
        enqueue_jobs=False,
        records=[{"prediction_id": "=cmd()", "observed_at": "soon"}],
    )
    html = viewer.get("/models/churn/quarantine/").content.decode()
    assert "3 records" in html and "score" in html and "timestamp" in html
    only_batch = viewer.get("/models/churn/quarantine/", {"batch": first.batch_id})
    assert "2 records" in only_batch.content.decode()
    assert viewer.get("/models/churn/quarantine/", {"batch": "nope"}).status_code == 400
    response = viewer.get("/models/churn/quarantine.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    # the API's columns (docs/api.md), formula-like cells disarmed
    assert rows[0][:6] == ["id", "batch_id", "kind", "index", "prediction_id", "code"]
    assert len(rows) == 4
    assert "'=cmd()" in [row[4] for row in rows]
    codes = {row[5] for row in rows[1:]}
    assert viewer.get("/models/churn/quarantine/", {"code": sorted(codes)[0]}).status_code == 200


def test_open_alert_counts_only_open_alerts(traffic, viewer):
    Alert.objects.update(state="resolved", resolved_at=timezone.now())
    html = viewer.get("/").content.decode()
    row = html[html.index('href="/models/churn/"') :].split("</tr>")[0]
    assert "state-firing" not in row


def test_the_model_page_reads_no_raw_labels_even_with_an_empty_cache(traffic, viewer):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        assert viewer.get("/models/churn/").status_code == 200
    assert not any('FROM "monitoring_label"' in q["sql"] for q in queries)
