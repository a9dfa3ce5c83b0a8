"""Windows not over yet: left out of the drift flags, drawn apart from the complete ones; and
the spans that start at the model's first data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dashboard.charts import Immature, immature_shapes
from dashboard.sections.base import Scope, window_partial
from dashboard.sections.drift import since
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
