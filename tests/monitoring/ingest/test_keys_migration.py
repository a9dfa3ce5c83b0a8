"""Migration 0017 records the keys of the predictions stored before it (PostgreSQL), so that
an id stored before the upgrade is still refused in another month after it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from factory.services import model_create
from monitoring.ingest.partitions import partitions_ensure
from monitoring.ingest.services import records_ingest
from monitoring.models import Prediction
from tests.conftest import latest_migrations, migrate, need_service, prediction

BEFORE = [("monitoring", "0016_feature_bins_per_model")]
FEBRUARY, MARCH = datetime(2026, 2, 10, 12, tzinfo=UTC), datetime(2026, 3, 10, 12, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_an_id_stored_before_the_upgrade_is_a_conflict_in_another_month_after_it(settings):
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    settings.CANARY_INGEST_RATE = None
    model = model_create(name="upgraded", task="binary_classification", positive_class=1)
    version = model.versions.create(version="1.0.0")
    latest = latest_migrations()
    # given p-1 stored in February before the keys table existed
    apps = migrate(BEFORE)
    partitions_ensure([FEBRUARY, MARCH])
    apps.get_model("monitoring", "Prediction").objects.create(
        model_id=model.pk,
        version_id=version.pk,
        prediction_id="p-1",
        timestamp=FEBRUARY,
        prediction="1",
        content_md5="stored before",
    )
    # when the installation is upgraded and p-1 comes again for March, beside a new id
    migrate(latest)
    receipt = records_ingest(
        model=model,
        kind="predictions",
        records=[prediction(1, at=MARCH), prediction(2, at=MARCH)],
        enqueue_jobs=False,
    )
    # then the new id is stored and p-1 is a conflict: one row for p-1, February's
    assert (receipt.accepted, receipt.rejected) == (1, 1)
    assert receipt.errors[0]["code"] == "conflict"
    assert list(
        Prediction.objects.filter(prediction_id="p-1").values_list("timestamp", flat=True)
    ) == [FEBRUARY]
