"""The model page's drift, data-quality and sensitivity, and the feature page: what a user reads
there agrees with the API on the same data and with SciPy/NumPy on the raw values."""

from __future__ import annotations

import html as html_lib
import json
import math
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import numpy as np
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from scipy import stats

from factory.services import version_register
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.series import SeriesSet, metric_series, metric_window
from tests.conftest import outcome, prediction

pytestmark = pytest.mark.django_db
XSS = "<script>alert(1)</script>"
REFERENCE_ROWS = 400  # at most 1000: KS on the histograms is exact
PER_DAY = 48


def day_start(days_ago: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


def figures(page: str) -> dict[str, dict]:
    """The page's figures, read as strictly as a browser's JSON.parse does (no NaN)."""
    scripts = re.findall(r'<script id="([^"]+)-data" type="application/json">(.*?)</script>', page)
    return {dom_id: json.loads(body, parse_constant=not_json) for dom_id, body in scripts}


def not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


@pytest.fixture
def raw(model):
    """A registered reference, then three days of traffic: the first like the reference, the
    next two with `age` shifted up (some beyond the reference's maximum), some ages missing,
    and a plan the reference never had. Returns the raw values for the checks."""
    rng = np.random.default_rng(3)
    ref_age = rng.normal(40, 8, REFERENCE_ROWS).round(1)
    ref_plan = rng.choice(["basic", "premium"], REFERENCE_ROWS)
    ref_xss = rng.choice(["a", "b"], REFERENCE_ROWS)
    rows = [
        {"features": {"age": float(a), "plan": str(p), XSS: str(x), "flag": 1.0}}
        for a, p, x in zip(ref_age, ref_plan, ref_xss, strict=True)
    ]
    version_register(model=model, version="1.0.0", lineage={"data": "q3"}, reference={"rows": rows})
    records, current = [], []
    for day in range(3):
        drifted = day > 0
        ages = rng.normal(58 if drifted else 40, 8, PER_DAY).round(1)
        for j in range(PER_DAY):
            i = day * PER_DAY + j
            age = None if drifted and j % 12 == 0 else float(ages[j])
            plan = "gold" if drifted and j % 8 == 1 else ("basic", "premium")[j % 2]
            at = day_start(3 - day) + timedelta(minutes=30 * j)
            segment = XSS if j % 3 == 0 else "web"
            features = {"age": age, "plan": plan, XSS: "ab"[j % 2], "flag": 1.0}
            records.append(
                prediction(
                    i,
                    at=at,
                    segment=segment,
                    features=features,
                    score=round(float(rng.uniform()), 3),
                )
            )
            current.append({"day": day, "segment": segment, **features})
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    labels = [
        outcome(i, at=day_start(0), outcome=int(i % 5 > 0), values={"revenue": float(i)})
        for i in range(0, 3 * PER_DAY, 2)
    ]
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    records_ingest(
        model=model,
        kind="predictions",
        enqueue_jobs=False,
        records=[{"prediction_id": "broken", "score": 3}],
    )
    jobs_run(model_id=model.pk)
    return {"ref_age": ref_age, "ref_plan": ref_plan, "current": current}


def values_of(raw, name, *, day=None, segment=None):
    return [
        row[name]
        for row in raw["current"]
        if day in (None, row["day"]) and segment in (None, row["segment"])
    ]


def api_drift(client, **params) -> dict:
    response = client.get("/api/v1/models/churn/drift", params)
    assert response.status_code == 200, response.content
    return {f["name"]: f for f in response.json()["features"]}


def test_the_heatmap_shows_each_windows_drift_as_the_api_and_scipy_do(raw, viewer, client_with):
    api = client_with("read")
    heatmap = figures(viewer.get("/models/churn/").content.decode())["drift-heatmap"]
    trace = heatmap["data"][0]
    rows = [html_lib.unescape(name) for name in trace["y"]]
    assert rows == sorted([XSS, "age", "flag", "plan"])
    for day in range(3):
        start = day_start(3 - day)
        column = trace["x"].index(start.isoformat())
        features = api_drift(
            api, start=start.isoformat(), end=(start + timedelta(days=1)).isoformat()
        )
        for r, name in enumerate(rows):
            shown = trace["customdata"][r][column]
            assert shown == pytest.approx(features[name]["statistic"], abs=1e-12), (name, day)
        # Against SciPy on the raw values: KS on a reference of 400 values is exact.
        ages = [a for a in values_of(raw, "age", day=day) if a is not None]
        expected = stats.ks_2samp(raw["ref_age"], ages)
        assert trace["customdata"][rows.index("age")][column] == pytest.approx(expected.statistic)
        drifted = trace["z"][rows.index("age")][column] >= 1
        assert drifted == (expected.pvalue < 0.05) == (day > 0)
    # Windows without traffic are blank, not zero (today's); the span starts at the model's
    # first data, not 30 empty days before it.
    assert trace["customdata"][0][trace["x"].index(day_start(0).isoformat())] is None
    assert trace["x"][0] == day_start(3).isoformat()


def test_the_drifted_share_over_time_and_the_feature_table(raw, viewer, client_with):
    api = client_with("read")
    page = viewer.get("/models/churn/").content.decode()
    share = figures(page)["drift-share"]
    line = share["data"][0]
    for day in range(3):
        start = day_start(3 - day)
        window = {"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}
        response = api.get("/api/v1/models/churn/drift", window)
        assert line["y"][line["x"].index(start.isoformat())] == response.json()["share_drifted"]
    assert share["layout"]["shapes"][0]["y0"] == 0.5  # the dataset-drift threshold
    table = page[page.index('id="drift-features"') :].split("</table>")[0]
    age_row = table[table.index(">age</a>") - 80 :].split("</tr>")[0]
    assert 'href="/models/churn/features/age/?' in age_row
    assert f"{day_start(2):%Y-%m-%d %H:%M} UTC" in age_row  # drifting since the shift


def test_data_quality_counts_agree_with_the_raw_values(raw, viewer):
    page = viewer.get("/models/churn/").content.decode()
    section = page[page.index('id="quality"') :].split("</section>")[0]
    table = section[section.index('id="quality-features"') :].split("</table>")[0]
    rows = {re.search(r">([^<]+)</a>", r).group(1): r for r in table.split("<tr>")[2:]}
    ages = values_of(raw, "age")
    missing = sum(a is None for a in ages)
    assert f"{missing / len(ages):.2%}" in rows["age"]
    assert f"({missing} of {len(ages)} rows)" in rows["age"]
    present = np.array([a for a in ages if a is not None])
    below = int((present < raw["ref_age"].min()).sum())
    above = int((present > raw["ref_age"].max()).sum())
    assert above > 0
    assert f"{below + above} <span" in rows["age"]
    assert f"{below} below" in rows["age"] and f"{above} above" in rows["age"]
    gold = sum(p == "gold" for p in values_of(raw, "plan"))
    assert f"{gold} values in 1 new category: <code>gold</code> ({gold})" in rows["plan"]
    quarantine = section[section.index('id="quality-quarantine"') :]
    assert 'href="/models/churn/quarantine/?code=' in quarantine
    assert "All 1 quarantined records" in section


def test_the_sensitivity_line_matches_the_api_and_the_textbook_formula(raw, viewer, client_with):
    api = client_with("read")
    page = viewer.get("/models/churn/").content.decode()
    accuracy = page[page.index('id="metric-accuracy"') :].split("</figure>")[0]
    note = re.search(r'class="sensitivity">([^<]*)<', accuracy).group(1)
    start, end = day_start(29), day_start(-1)
    report = api.get(
        "/api/v1/models/churn/sensitivity",
        {
            "metric": "accuracy",
            "granularity": "day",
            "start": start.isoformat(),
            "end": end.isoformat(),
        },
    ).json()
    points = [
        f"{report['mde_absolute'] * 100:.2g} points from one day to the next",
        f"{report['mde_absolute'] * 100:.0f} points from one day to the next",
    ]
    assert any(p in html_lib.unescape(note) for p in points), note
    assert f"about {report['n_per_window']:,.0f} observations a day" in note
    # The same number from the formula, on the raw labels: one day of 72 judged predictions.
    judged = [i % 5 > 0 for i in range(0, 3 * PER_DAY, 2)]
    p, n = np.mean(judged), len(judged) / 3
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert report["mde_absolute"] == pytest.approx(z * math.sqrt(p * (1 - p)) * math.sqrt(2 / n))
    wait = re.search(r"shows once (\d+) (hour|day|week)s? of data can be set against", note)
    in_unit = api.get(
        "/api/v1/models/churn/sensitivity",
        {
            "metric": "accuracy",
            "granularity": wait.group(2),
            "start": start.isoformat(),
            "end": end.isoformat(),
        },
    ).json()
    assert int(wait.group(1)) == in_unit["windows_to_detect"]["0.05"]


def test_the_page_reads_each_sum_once_and_never_the_raw_rows(raw, viewer):
    viewer.get("/models/churn/")  # caches the label delays and rule warnings
    with CaptureQueriesContext(connection) as queries:
        assert viewer.get("/models/churn/").status_code == 200
    sqls = [q["sql"] for q in queries]
    raw_reads = [sql for sql in sqls if 'FROM "monitoring_prediction"' in sql]
    assert all("LIMIT 1" in sql for sql in raw_reads)  # only the last prediction's time
    sums = [s for s in sqls if 'FROM "monitoring_hourlyaggregate"' in s and "SUM(" in s]
    # The windows' sums once; besides them only label maturity's unlabelled counts per hour.
    assert sum('"score_sum"' in sql for sql in sums) == 1
    assert [sql for sql in sums if '"score_sum"' not in sql and '"unlabelled"' not in sql] == []
    assert len(sqls) < 40


@pytest.mark.parametrize("granularity", ["hour", "day", "week"])
def test_one_read_of_the_sums_gives_every_metric_as_metric_series_does(raw, granularity):
    start, end = day_start(6), day_start(-1)
    scope = {"start": start, "end": end, "version": None, "segment": "web"}
    series = SeriesSet(model=raw_model(), **scope)
    for metric in (
        "accuracy",
        "f1",
        "roc_auc",
        "log_loss",
        "predictions",
        "value:revenue",
        "label_coverage",
        "mean_score",
    ):
        expected = metric_series(model=raw_model(), metric=metric, granularity=granularity, **scope)
        got = series.series(metric, granularity)
        assert [(p.start, p.n) for p in got] == [(p.start, p.n) for p in expected], metric
        for a, b in zip(got, expected, strict=True):
            assert a.value == pytest.approx(b.value), metric
            assert a.ci_low == pytest.approx(b.ci_low) and a.ci_high == pytest.approx(b.ci_high)
        total = metric_window(model=raw_model(), metric=metric, **scope)
        assert series.total(metric).value == pytest.approx(total.value)


def raw_model():
    from factory.models import MLModel

    return MLModel.objects.get(name="churn")


def test_the_feature_page_shows_reference_against_current(raw, viewer, client_with):
    response = viewer.get("/models/churn/features/plan/", {"days": 30})
    assert response.status_code == 200
    charts = figures(response.content.decode())
    bars = charts["feature-distribution"]
    reference, current = bars["data"]
    assert (reference["name"], current["name"]) == ("reference", "current")
    plans = values_of(raw, "plan")
    for label, share in zip(current["x"], current["y"], strict=True):
        assert share == pytest.approx(plans.count(label) / len(plans), abs=1e-6)
    for label, share in zip(reference["x"], reference["y"], strict=True):
        expected = float(np.mean(raw["ref_plan"] == label))
        assert share == pytest.approx(expected, abs=1e-6)
    assert bars["layout"]["xaxis"]["title"]["text"] and bars["layout"]["yaxis"]["title"]["text"]


def test_the_feature_page_histogram_and_drift_over_time(raw, viewer, client_with):
    api = client_with("read")
    page = viewer.get("/models/churn/features/age/").content.decode()
    charts = figures(page)
    bars = charts["feature-distribution"]
    reference, current = bars["data"]
    # Coarse bars from the fine stored bins: the shares of the raw values in the same ranges.
    low, high = raw["ref_age"].min(), raw["ref_age"].max()
    edges = np.linspace(low, high, len(reference["x"]) + 1)
    counts, _ = np.histogram(np.clip(raw["ref_age"], low, high), edges)
    assert reference["y"] == pytest.approx(list(counts / counts.sum()), abs=0.02)
    assert sum(current["y"]) == pytest.approx(1, abs=1e-4)
    over_time = charts["feature-drift"]
    line = over_time["data"][0]
    assert "Kolmogorov-Smirnov p-value" in over_time["layout"]["yaxis"]["title"]["text"]
    assert over_time["layout"]["shapes"][0]["y0"] == 0.05  # the threshold line
    for day in range(3):
        start = day_start(3 - day)
        features = api_drift(
            api, start=start.isoformat(), end=(start + timedelta(days=1)).isoformat()
        )
        value = line["y"][line["x"].index(start.isoformat())]
        assert value == pytest.approx(features["age"]["p_value"])
    assert "drifting in every window since" in page


def test_the_feature_page_per_segment(raw, viewer, client_with):
    api = client_with("read")
    web = viewer.get("/models/churn/features/age/", {"segment": "web", "days": "all"})
    page = web.content.decode()
    assert 'aria-current="true">web</a>' in page
    table = page[page.index('id="segment-drift"') :].split("</table>")[0]
    features = api_drift(
        api, segment="web", start=day_start(3).isoformat(), end=day_start(-1).isoformat()
    )
    ages = [a for a in values_of(raw, "age", segment="web") if a is not None]
    expected = stats.ks_2samp(raw["ref_age"], ages).statistic
    assert features["age"]["statistic"] == pytest.approx(expected)
    assert f"Kolmogorov-Smirnov {expected:.4g}" in table
    over_time = figures(page)["feature-drift"]
    assert "web" in over_time["layout"]["title"]["text"]


def test_feature_and_segment_names_are_escaped_everywhere(raw, viewer):
    pages = [
        viewer.get("/models/churn/"),
        viewer.get("/models/churn/", {"segment": XSS}),
        viewer.get(f"/models/churn/features/{quote(XSS, safe='')}/"),
        viewer.get(f"/models/churn/features/{quote(XSS, safe='')}/", {"segment": XSS}),
        viewer.get("/models/churn/features/age/", {"segment": XSS}),
    ]
    for response in pages:
        assert response.status_code == 200
        text = response.content.decode()
        assert XSS not in text
        for figure in figures(text).values():
            assert "<script" not in json.dumps(figure).lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[2].content.decode()


def test_a_bad_feature_or_scope_gets_a_message(raw, viewer):
    missing = viewer.get("/models/churn/features/nope/")
    assert missing.status_code == 400 and "has no feature" in missing.content.decode()
    assert viewer.get("/models/churn/features/age/", {"granularity": "year"}).status_code == 400
    assert viewer.get("/models/churn/features/age/", {"version": "9"}).status_code == 400
    assert viewer.get("/models/nope/features/age/").status_code == 404


def test_the_feature_page_needs_a_login(raw, viewer):
    assert viewer.get("/models/churn/features/age/").status_code == 200
    anonymous = Client().get("/models/churn/features/age/")
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_without_a_picked_version_each_window_pools_every_version(model, viewer, client_with):
    # given: 1.0.0 alone, then both interleaved, then 1.1.0 alone (older customers)
    rng = np.random.default_rng(5)
    reference = rng.normal(40, 8, 300).round(1)
    rows = [{"features": {"age": float(a)}} for a in reference]
    for version in ("1.0.0", "1.1.0"):
        version_register(
            model=model, version=version, lineage={"data": "q3"}, reference={"rows": rows}
        )
    served = {0: ("1.0.0",), 1: ("1.0.0", "1.1.0"), 2: ("1.1.0",)}
    ages: dict[int, list[float]] = {day: [] for day in served}
    records = []
    for day, versions in served.items():
        for j in range(PER_DAY):
            version = versions[j % len(versions)]
            age = round(float(rng.normal(40 if version == "1.0.0" else 58, 8)), 1)
            ages[day].append(age)
            at = day_start(3 - day) + timedelta(minutes=30 * j)
            records.append(
                prediction(day * 100 + j, at=at, model_version=version, features={"age": age})
            )
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    api = client_with("read")
    # when
    page = viewer.get("/models/churn/").content.decode()
    line = figures(viewer.get("/models/churn/features/age/").content.decode())["feature-drift"]
    # then: each window is every version's traffic, as the API's drift without a version and
    # as SciPy on the pooled raw values
    trace = figures(page)["drift-heatmap"]["data"][0]
    for day, versions in served.items():
        start = day_start(3 - day)
        column = trace["x"].index(start.isoformat())
        window = {"start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}
        expected = stats.ks_2samp(reference, ages[day])
        assert trace["customdata"][0][column] == pytest.approx(expected.statistic, rel=1e-12)
        assert trace["customdata"][0][column] == pytest.approx(
            api_drift(api, **window)["age"]["statistic"], rel=1e-12
        )
        which = "version " if len(versions) == 1 else "versions "
        assert f"{which}{', '.join(versions)}:" in trace["text"][0][column]
        assert (trace["z"][0][column] >= 1) == (expected.pvalue < 0.05) == (day > 0)
        value = line["data"][0]["y"][line["data"][0]["x"].index(start.isoformat())]
        assert value == pytest.approx(expected.pvalue, rel=1e-6)
    assert "versions 1.0.0, 1.1.0" in page
    assert "Every version's predictions (1.0.0, 1.1.0), summed on the model's bins" in page
    assert "age: Kolmogorov-Smirnov per day, every version" in line["layout"]["title"]["text"]


def test_cached_sections_follow_new_data_at_once(raw, model, viewer):
    before = figures(viewer.get("/models/churn/").content.decode())
    # The last day gets more drifted traffic: its statistic and the sensitivity must move.
    start = day_start(1)
    features = {"age": 90.0, "plan": "basic", XSS: "a"}
    records = [
        prediction(1000 + j, at=start + timedelta(minutes=10 * j), features=features)
        for j in range(60)
    ]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    labels = [outcome(1000 + j, at=day_start(0), outcome=0) for j in range(60)]
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    page = viewer.get("/models/churn/").content.decode()
    after = figures(page)
    column = after["drift-heatmap"]["data"][0]["x"].index(start.isoformat())
    row = [html_lib.unescape(y) for y in after["drift-heatmap"]["data"][0]["y"]].index("age")
    old = before["drift-heatmap"]["data"][0]["customdata"][row][column]
    new = after["drift-heatmap"]["data"][0]["customdata"][row][column]
    assert new > old
    ages = [a for a in values_of(raw, "age", day=2) if a is not None] + [90.0] * 60
    assert new == pytest.approx(stats.ks_2samp(raw["ref_age"], ages).statistic)


def test_a_constant_feature_without_a_reference_leaves_no_nan_in_the_page(model, viewer):
    records = [prediction(i, at=day_start(1) + timedelta(hours=i)) for i in range(20)]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    for url in ("/models/churn/", "/models/churn/features/age/"):
        response = viewer.get(url)
        assert response.status_code == 200
        charts = figures(response.content.decode())  # strict JSON, as the browser reads it
        assert charts


def test_a_window_of_only_missing_values_is_no_values_not_a_server_error(
    model, viewer, client_with
):
    day = day_start(1)
    records = [
        prediction(
            i,
            at=day + timedelta(hours=i),
            features={"age": None if i > 10 else 40, "plan": "basic"},
        )
        for i in range(20)
    ]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    window = {
        "start": (day + timedelta(hours=12)).isoformat(),
        "end": (day + timedelta(hours=20)).isoformat(),
    }
    age = api_drift(client_with("read"), **window)["age"]
    assert age["statistic"] is None and age["note"] == "no values on one side"
    assert age["n_current"] == 0 and age["missing_current"] == 8
    page = viewer.get("/models/churn/features/age/", {"granularity": "hour"}).content.decode()
    assert "no values on one side" in page or "no values" in page
    figures(page)  # strict JSON


def test_new_data_tests_again_only_the_windows_it_touched(
    raw, model, viewer, client_with, monkeypatch
):
    # given: the page seen once, so every window's drift test is kept
    import monitoring.metrics.drift as drift

    viewer.get("/models/churn/")
    record = prediction(
        2000,
        at=day_start(1) + timedelta(hours=3),
        features={"age": 70.0, "plan": "basic", XSS: "a", "flag": 1.0},
    )
    records_ingest(model=model, kind="predictions", records=[record], enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    tested = []
    real = drift.feature_cells
    monkeypatch.setattr(
        drift,
        "feature_cells",
        lambda feature, parts, settings: (
            tested.append((feature.name, len(parts))) or real(feature, parts, settings)
        ),
    )
    # when: the page is read again
    page = figures(viewer.get("/models/churn/").content.decode())
    # then: only the day of the new prediction is tested again, each feature once, and the
    # heatmap still shows every day as the API does
    assert sorted(tested) == sorted((name, 1) for name in [XSS, "age", "flag", "plan"])
    trace = page["drift-heatmap"]["data"][0]
    column = trace["x"].index(day_start(3).isoformat())
    first_day = api_drift(
        client_with("read"), start=day_start(3).isoformat(), end=day_start(2).isoformat()
    )
    rows = [html_lib.unescape(name) for name in trace["y"]]
    assert trace["customdata"][rows.index("age")][column] == pytest.approx(
        first_day["age"]["statistic"], abs=1e-12
    )
