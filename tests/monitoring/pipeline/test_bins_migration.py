"""Migration 0016 moves bins from per version to per model: each feature keeps its first
version's bins, references on them move to `FeatureReference`, and sketches of a version that
was on other edges are dropped (to be rebuilt by `aggregates_backfill`)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from tests.conftest import latest_migrations, migrate

FACTORY = ("factory", "0005_model_label_maturity")
BEFORE = [("monitoring", "0015_error_model_and_loss_sums"), FACTORY]
AFTER = [("monitoring", "0016_feature_bins_per_model"), FACTORY]
HOUR = datetime(2026, 10, 1, tzinfo=UTC)


def edges(*values: float) -> bytes:
    return np.array(values, dtype="<f8").tobytes()


@pytest.fixture
def before_0016(transactional_db):
    """Three versions at 0015: 1.0.0 and 1.1.0 on the same bins of `age`, 2.0.0 on others;
    `note` all missing in 1.0.0 and categorical in 1.1.0. Back to the latest schema after."""
    apps = migrate(BEFORE)
    yield apps
    migrate(latest_migrations())


def test_each_feature_keeps_its_first_versions_bins_and_references_move(before_0016):
    # given
    apps = before_0016
    model = apps.get_model("factory", "MLModel").objects.create(
        name="churn", task="binary_classification"
    )
    Version = apps.get_model("factory", "ModelVersion")
    v1, v11, v2 = (
        Version.objects.create(model=model, version=v) for v in ("1.0.0", "1.1.0", "2.0.0")
    )
    Bins = apps.get_model("monitoring", "FeatureBins")
    common = {"model": model, "source": "reference", "reference_rows": 40}
    for version, age_edges in ((v1, edges(1, 2, 3)), (v11, edges(1, 2, 3)), (v2, edges(5, 6))):
        Bins.objects.create(
            version=version, name="age", kind="numerical", edges=age_edges,
            reference=b"ref-" + version.version.encode(), deciles=edges(2),
            reference_sha256="sha", **common,
        )  # fmt: skip
    Bins.objects.create(version=v1, name="note", kind="unknown", edges=b"", model=model)
    Bins.objects.create(version=v11, name="note", kind="categorical", edges=b"", model=model)
    Sketch = apps.get_model("monitoring", "Sketch")
    for version in (v1, v2):
        Sketch.objects.create(
            model=model, version=version, period="hour", start=HOUR, kind="numerical",
            name="age", n=1, data=b"x",
        )  # fmt: skip
    # when
    apps = migrate(AFTER)
    # then: one set of bins per feature, the first version's (of a known kind)
    Bins = apps.get_model("monitoring", "FeatureBins")
    kept = {row.name: row for row in Bins.objects.filter(model_id=model.pk)}
    assert set(kept) == {"age", "note"} and Bins.objects.count() == 2
    assert bytes(kept["age"].edges) == edges(1, 2, 3)
    assert bytes(kept["age"].deciles) == edges(2)
    assert kept["note"].kind == "categorical"
    # the references of the versions on those bins move; 2.0.0's is counted again later
    Reference = apps.get_model("monitoring", "FeatureReference")
    moved = {(r.version_id, r.name): bytes(r.reference) for r in Reference.objects.all()}
    assert moved == {(v1.pk, "age"): b"ref-1.0.0", (v11.pk, "age"): b"ref-1.1.0"}
    # 2.0.0's histograms on other edges are gone; 1.0.0's stay
    Sketch = apps.get_model("monitoring", "Sketch")
    assert list(Sketch.objects.values_list("version_id", flat=True)) == [v1.pk]
