"""The "Why?" page: the change in one sentence, the drivers in words with links to their rows
and their feature, the waterfall of mix against within; reached from an alert and from the
rows behind a chart point. The data: accuracy 0.9 in both regions on day -1, and on day 0
0.5 in the south only (so 0.9 to 0.7, all of it within the south, whose share stays half)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.models import Alert
from tests.conftest import outcome, prediction
from tests.monitoring.alerts.test_email_content import regional_traffic
from tests.monitoring.alerts.test_kinds import DAY0, end_of_day, rule

pytestmark = pytest.mark.django_db
DAY_1, DAY_0 = DAY0 - timedelta(days=1), DAY0


@pytest.fixture
def south_breaks(model):
    rule(model, kind="static", lower=0.8)
    regional_traffic(model, -1, {"north": 180, "south": 180})
    regional_traffic(model, 0, {"north": 180, "south": 100})
    jobs_run(model_id=model.pk, now=end_of_day(0))
    return model


def why_url(**query) -> str:
    query = {"metric": "accuracy", "start": DAY_0.isoformat(), "end": end_of_day(0).isoformat()}
    return "/models/churn/why/?" + "&".join(
        f"{k}={v.replace('+', '%2B')}" for k, v in query.items()
    )


def test_the_page_says_the_change_and_its_drivers_in_words(south_breaks, viewer):
    html = viewer.get(why_url()).content.decode()
    sentence = re.search(r'id="change-sentence">(.*?)</p>', html).group(1)
    assert (
        sentence
        == f"Accuracy fell 20.0 points: 0.90 on {DAY_1:%Y-%m-%d}, 0.70 on {DAY_0:%Y-%m-%d}."
    )
    drivers = re.findall(r'<li class="driver">(.*?)</li>', html, re.S)
    assert len(drivers) == 1  # north did not move; one version, one segment, one age
    assert drivers[0].startswith(
        "20.0 points of them within region south, where it fell from 0.90 to 0.50 (q &lt; 0.001)."
    )
    assert 'id="no-significant-driver"' not in html  # this one is no chance


def test_a_driver_links_to_its_rows_and_to_its_feature(south_breaks, viewer):
    html = viewer.get(why_url()).content.decode()
    rows = re.search(r'class="driver-rows" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    query = parse_qs(urlsplit(rows).query)
    assert urlsplit(rows).path == "/models/churn/rows/"
    assert query["feature"] == ["region"] and query["category"] == ["south"]
    assert query["start"] == [DAY_0.isoformat()] and query["end"] == [end_of_day(0).isoformat()]
    # the rows page then shows exactly the south's 200 predictions of day 0
    assert "<p>200 rows" in viewer.get(rows).content.decode()
    feature = re.search(r'class="driver-feature" href="([^"]+)"', html).group(1)
    assert feature == "/models/churn/features/region/"


def test_the_waterfall_adds_mix_and_within_up_to_the_change(south_breaks, viewer):
    html = viewer.get(why_url()).content.decode()
    figure = json.loads(re.search(r'id="why-waterfall-data"[^>]*>(.*?)</script>', html).group(1))
    (trace,) = figure["data"]
    assert trace["type"] == "waterfall"
    groups = {}
    for group, step, value in zip(*trace["x"], trace["y"], strict=True):
        groups.setdefault(group, {})[step] = value
    # one group per dimension that splits the traffic (one segment, version and age do not)
    assert set(groups) == {"region"}
    for steps in groups.values():  # in points: 90 then 70
        assert steps["baseline"] == pytest.approx(90) and steps["current"] == pytest.approx(70)
        assert steps["baseline"] + steps["mix"] + steps["within"] == pytest.approx(70)
    assert groups["region"]["within"] == pytest.approx(-20) and groups["region"]["mix"] == 0


def test_the_alert_page_and_the_rows_of_a_chart_point_lead_to_it(south_breaks, viewer):
    alert = Alert.objects.get()
    html = viewer.get(f"/models/churn/alerts/{alert.pk}/").content.decode()
    link = re.search(r'id="why-link" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(link).query)["start"] == [DAY_0.isoformat()]
    assert "Accuracy fell 20.0 points" in viewer.get(link).content.decode()
    # a chart point's rows (an hour of day 0) lead to the same day's explanation
    hour = DAY_0 + timedelta(hours=6)
    rows = viewer.get(
        "/models/churn/rows/",
        {
            "metric": "accuracy",
            "start": hour.isoformat(),
            "end": (hour + timedelta(hours=1)).isoformat(),
        },
    ).content.decode()
    link = re.search(r'id="why-link" href="([^"]+)"', rows).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(link).query)["end"] == [end_of_day(0).isoformat()]
    assert "Accuracy fell 20.0 points" in viewer.get(link).content.decode()


def test_bad_requests_say_what_is_wrong(south_breaks, viewer):
    answer = viewer.get("/models/churn/why/?metric=predictions")
    text = answer.content.decode()
    assert answer.status_code == 400 and "Accuracy, Precision, Recall" in text
    assert "not Predictions" in text and "positive_rate" not in text
    answer = viewer.get(why_url().replace("metric=accuracy", "metric=accuracy&baseline_start=x"))
    assert answer.status_code == 400 and "baseline_start" in answer.content.decode()


def segment_traffic(model, day: int, counts: dict[str, tuple[int, int]]) -> None:
    """Per segment, (n, correct) labelled predictions on day `day`."""
    at = DAY0 + timedelta(days=day, hours=6)
    records, labels = [], []
    first = 50_000 + day * 10_000
    for segment, (n, right) in sorted(counts.items()):
        for i in range(first, first + n):
            records.append(prediction(i, at=at, prediction=1, segment=segment))
            labels.append(outcome(i, at=at + timedelta(hours=1), outcome=int(i - first < right)))
        first += n
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)


def test_a_shift_of_customers_is_told_as_mix(model, viewer):
    # given: the app segment (accuracy 0.7 on both days) grows from 25% to 75% of the traffic,
    # while web stays at 0.9: accuracy falls from 0.85 to 0.75, and no slice got worse. The mix
    # effects: app (0.75 - 0.25) * (0.7 - 0.85) = -7.5 points, web -0.5 * (0.9 - 0.85) = -2.5
    segment_traffic(model, -1, {"app": (100, 70), "web": (300, 270)})
    segment_traffic(model, 0, {"app": (300, 210), "web": (100, 90)})
    jobs_run(model_id=model.pk, now=end_of_day(0))
    # when
    html = viewer.get(why_url()).content.decode()
    # then
    assert "Accuracy fell 10.0 points: 0.85 on" in html
    drivers = [
        re.sub(r"\s+", " ", d) for d in re.findall(r'<li class="driver">(.*?)</li>', html, re.S)
    ]
    assert drivers[0].startswith(
        "7.5 points of them from the mix: segment “app” grew from 25% to 75% of the window, "
        "and its Accuracy was 0.70 against 0.85 overall ("
    )
    assert drivers[1].startswith(
        "2.5 points of them from the mix: segment “web” shrank from 75% to 25% of the window, "
        "and its Accuracy was 0.90 against 0.85 overall ("
    )
    figure = json.loads(re.search(r'id="why-waterfall-data"[^>]*>(.*?)</script>', html).group(1))
    steps = dict(zip(figure["data"][0]["x"][1], figure["data"][0]["y"], strict=True))
    assert steps["mix"] == pytest.approx(-10) and steps["within"] == pytest.approx(0, abs=1e-9)


def test_a_category_that_looks_like_markup_is_shown_as_text(model, viewer):
    # given: accuracy falls within a region whose name is a script tag
    xss = "<script>alert(1)</script>"
    rule(model, kind="static", lower=0.8)
    regional_traffic(model, -1, {"north": 180, xss: 180})
    regional_traffic(model, 0, {"north": 180, xss: 100})
    jobs_run(model_id=model.pk, now=end_of_day(0))
    # then: the page and the alert page say it as text
    html = viewer.get(why_url()).content.decode()
    assert xss not in html
    assert "within region &lt;script&gt;alert(1)&lt;/script&gt;, where it fell" in html
    alert = viewer.get(f"/models/churn/alerts/{Alert.objects.get().pk}/").content.decode()
    assert xss not in alert and "Within region &lt;script&gt;alert(1)&lt;/script&gt;" in alert
