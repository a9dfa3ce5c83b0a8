"""Windows not over yet: left out of the drift flags, drawn apart from the complete ones; the
first window when the model's data starts within it, drawn apart too; and the spans that start
at the model's first data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.charts import Immature, immature_shapes, metric_figure
from dashboard.sections.base import Scope, window_leading, window_partial
from dashboard.sections.drift import feature_row, since
from factory.models import MLModel
from monitoring.metrics.drift import DriftSeries
from monitoring.metrics.series import Point
from monitoring.stats.drift import FeatureDrift

NOW = datetime(2026, 3, 4, 15, 30, tzinfo=UTC)
DAYS = [datetime(2026, 3, d, tzinfo=UTC) for d in (1, 2, 3, 4)]


def result(drifted: bool) -> FeatureDrift:
    return FeatureDrift("age", "numerical", "ks", 0.3, 0.01, 0.05, drifted, None, 400, 98, 0)


def test_a_feature_is_not_drifting_on_the_window_in_progress_alone():
    results = [result(False), result(False), result(False), result(True)]  # today: 98 rows
    assert since(results, DAYS, current=DAYS[-1]) is None
    results = [result(False), result(True), result(True), result(True)]
    assert since(results, DAYS, current=DAYS[-1]) == DAYS[1]  # from complete windows only
    assert since(results, DAYS, current=DAYS[-1] + timedelta(days=1)) == DAYS[1]


def test_the_drift_table_judges_complete_windows_only():
    # given a feature that drifted on the day in progress alone (98 rows so far)
    results = [result(False), result(False), result(False), result(True)]
    series = DriftSeries(None, None, DAYS, {"age": results}, [0, 0, 0, 1], {}, {})
    # when its row of the model page's drift table is made
    row = feature_row(MLModel(name="churn"), Scope("day", None, None), series, "age", DAYS[-1])
    # then its latest window is the last complete day, and the day in progress is not counted
    assert row["latest_text"].startswith("Kolmogorov") and "no drift" in row["latest_text"]
    assert (row["drifted"], row["tested"], row["since"]) == (0, 3, None)


def test_only_the_window_not_over_yet_is_partial():
    partial = window_partial(DAYS[-1], "day", NOW)
    assert partial is not None and partial.end == DAYS[-1] + timedelta(days=1)
    assert partial.label == "today so far"
    assert window_partial(DAYS[-2], "day", NOW) is None


def test_a_month_of_immature_hours_is_one_shaded_area_with_one_note():
    start = datetime(2026, 3, 1, tzinfo=UTC)
    hours = [
        Immature(
            (start + timedelta(hours=h)).isoformat(),
            (start + timedelta(hours=h + 1)).isoformat(),
            h / 100,
        )
        for h in range(72)
    ]
    shapes, notes = immature_shapes(hours)
    assert len(shapes) == 1 and shapes[0]["x0"] == hours[0].start
    assert shapes[0]["x1"] == hours[-1].end
    assert [n["text"] for n in notes] == ["outcomes arriving: 0% to 71% of expected"]
    _, few = immature_shapes(hours[:3])
    assert [n["text"] for n in few] == [
        "0% of expected outcomes",
        "1% of expected outcomes",
        "2% of expected outcomes",
    ]
    sums = [Immature(h.start, h.end, h.share, incomplete=True) for h in hours[:1]]
    assert immature_shapes(sums)[1][0]["text"] == "incomplete: 0% of expected outcomes"


def test_a_span_starts_at_the_models_first_data():
    first = datetime(2026, 2, 20, 10, tzinfo=UTC)
    start, end = Scope("week", days=182, first=first).span(NOW)
    assert start == datetime(2026, 2, 16, tzinfo=UTC)  # the Monday of the first data's week
    assert end == datetime(2026, 3, 9, tzinfo=UTC)
    start, _ = Scope("week", days=182).span(NOW)
    assert start < first - timedelta(days=150)  # without data known: the days asked for


def test_the_part_day_a_model_began_in_is_drawn_apart_from_whole_days():
    # given: a model whose first prediction came at 14:00 on March 1st, ten an hour since
    first = datetime(2026, 3, 1, 14, tzinfo=UTC)
    counts = (100, 240, 240, 155)  # a part-day, two whole days, today so far
    points = [
        Point(d, d + timedelta(days=1), c, c, None, None, None)
        for d, c in zip(DAYS, counts, strict=True)
    ]
    leading = window_leading(first, "day")
    # when
    figure = metric_figure(
        title="Predictions per day",
        points=points,
        y_title="predictions",
        partial=window_partial(DAYS[-1], "day", NOW),
        leading=leading,
    )
    # then: the line holds the whole days alone; the part-day is an open marker, hatched
    # and named with the hour its data starts
    traces = {t["name"]: t for t in figure["data"]}
    assert traces["predictions"]["x"] == [DAYS[1].isoformat(), DAYS[2].isoformat()]
    assert traces["predictions, first day, from 14:00"]["y"] == [100]
    hatched = [t["name"] for t in figure["data"] if t["type"] == "bar"]
    assert hatched == ["first day, from 14:00", "today so far"]
    assert "not judged" in figure["data"][-2]["hovertemplate"]
    # a model that began at midnight, or an hourly chart, has no part-window
    assert window_leading(DAYS[0], "day") is None
    assert window_leading(first, "hour") is None
    assert window_leading(first, "week").label == "first week, from Sun 14:00"
