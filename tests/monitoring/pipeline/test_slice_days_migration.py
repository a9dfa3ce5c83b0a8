"""Migration 0013 moves explain's slice rows (a row per slice, hour and day) into a row per day
(`SliceDay`) and per hour (`SliceHour`): nothing stored before is lost, nothing needs
aggregating again."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from factory.services import model_create
from monitoring.models import SLICE_SUM_FIELDS, SliceDay, SliceHour
from monitoring.pipeline.slice_aggregates import slices_decode
from tests.conftest import latest_migrations, migrate

BEFORE = [("monitoring", "0012_alert_rule_label_maturity")]
DAY = datetime(2026, 3, 9, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_slice_rows_of_a_day_become_its_row():
    model = model_create(name="moved", task="binary_classification", positive_class=1)
    version = model.versions.create(version="1")
    latest = latest_migrations()
    apps = migrate(BEFORE)
    slice_aggregate = apps.get_model("monitoring", "SliceAggregate")
    rng = np.random.default_rng(3)
    written = []
    for period, start in (
        ("hour", DAY.replace(hour=4)),
        ("hour", DAY.replace(hour=9)),
        ("day", DAY),
    ):
        for feature, slice_ in (("plan", "basic"), ("plan", "(missing)"), ("age", "[30, 40)")):
            counts = rng.integers(0, 50, len(SLICE_SUM_FIELDS)).tolist()
            sums = dict(zip(SLICE_SUM_FIELDS, counts, strict=True))
            sums["score_sum"] = float(rng.uniform(0, 10))
            slice_aggregate.objects.create(
                model_id=model.pk,
                version_id=version.pk,
                segment="web",
                period=period,
                start=start,
                feature=feature,
                slice=slice_,
                **sums,
            )
            written.append((period, int(start.timestamp()), feature, slice_, sums))

    migrate(latest)

    day = SliceDay.objects.get(model=model)
    assert day.day == DAY
    hours = SliceHour.objects.filter(model=model).order_by("hour")
    assert [row.hour for row in hours] == [DAY.replace(hour=4), DAY.replace(hour=9)]
    documents = [("hour", row.entries) for row in hours] + [("day", day.sums)]
    stored = {}
    for period, document in documents:
        entries = slices_decode(document)
        assert set(entries.version.tolist()) == {version.pk}
        assert set(entries.segment.tolist()) == {"web"}
        for start, feature, slice_, sums in zip(
            entries.start.tolist(), entries.feature, entries.slice, entries.sums, strict=True
        ):
            stored[(period, start, feature, slice_)] = sums
    assert len(stored) == len(written)
    for period, start, feature, slice_, sums in written:
        expected = [sums[name] for name in SLICE_SUM_FIELDS]
        np.testing.assert_array_equal(stored[(period, start, feature, slice_)], expected)
