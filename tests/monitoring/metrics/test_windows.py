"""Day and week windows, summed by the database, equal the sums of their hours."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.series import metric_series
from tests.conftest import prediction

pytestmark = pytest.mark.django_db
SUNDAY_NOON = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("granularity", ["day", "week"])
def test_windows_are_sums_of_their_hours(model, granularity):
    records = [prediction(i, at=SUNDAY_NOON + timedelta(hours=7 * i)) for i in range(60)]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    hours = metric_series(model=model, metric="predictions", granularity="hour")
    expected = Counter()
    for point in hours:
        start = point.start.replace(hour=0)
        if granularity == "week":
            start -= timedelta(days=start.weekday())  # Monday
        expected[start] += point.value
    windows = metric_series(model=model, metric="predictions", granularity=granularity)
    assert {p.start: p.value for p in windows if p.value} == dict(expected - Counter())
    assert sum(p.value for p in windows) == 60
    if granularity == "week":
        assert windows[0].start == datetime(2026, 3, 2, tzinfo=UTC)  # the Monday before
