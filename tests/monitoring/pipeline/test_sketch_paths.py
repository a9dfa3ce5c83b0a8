"""The set-based sketch path (PostgreSQL) and the pandas path write the same sketches.

Same rows, aggregated once by each path: the same sketch rows (hour and day), the same counts,
missing counts and category keys, and value sums equal up to the order of float additions.
The rows are awkward on purpose: integers on bin edges, strings and booleans in a numerical
feature, mixed JSON types in a categorical one, nulls, absent keys, rows without features,
a feature that is null everywhere, one that first appears late, and a feature whose kind
differs between versions.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection

from factory.services import model_create, version_register
from monitoring.ingest.services import records_ingest
from monitoring.metrics.loss_estimates import error_models_freeze
from monitoring.models import Sketch, SketchKind
from monitoring.pipeline.aggregate import aggregates_refresh
from monitoring.pipeline.codec import categorical_merge, confusion_merge
from monitoring.pipeline.join import outcomes_join
from monitoring.stats.codec import sparse_decode
from tests.conftest import NOW, need_service

pytestmark = pytest.mark.django_db(transaction=True)


def awkward_features(i: int, rng: np.random.Generator) -> dict | None:
    if i % 17 == 0:
        return None
    features = {
        "age": int(rng.integers(18, 30)),  # few distinct integers: many values on edges
        "income": float(rng.normal(50_000, 15_000)) if i % 5 else None,
        "plan": [1, 1.0, "1", True, "basic", 2.5, "pro", False][i % 8],
        "always_null": None,
    }
    if i % 11 == 0 and i >= 300:  # after age's bins are frozen as numerical
        features["age"] = ["n/a", True, "42"][i % 3]  # not numbers: missing for a number
    if i % 7 == 0:
        del features["income"]
    if i > 150:
        features["late"] = float(i % 13)
    return features


def records(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    predictions, outcomes = [], []
    for i in range(n):
        at = NOW + timedelta(minutes=7 * i)
        version = "1.0.0" if i < 200 or i % 2 else "2.0.0"
        features = awkward_features(i, rng)
        if version == "2.0.0" and features:
            features["income"] = ["low", "high", 3][i % 3]  # texts in version 2
        score = None if i % 9 == 0 else round(float(rng.uniform()), 3)
        predictions.append(
            {
                "prediction_id": f"p-{i}",
                "timestamp": at.isoformat(),
                "model_version": version,
                "prediction": int(rng.integers(0, 2)),
                "score": score,
                "segment": ["web", "app"][i % 2],
                "features": features,
            }
        )
        if i % 3:
            delay = timedelta(seconds=float(rng.uniform(1, 5 * 86400)))
            outcomes.append(
                {
                    "prediction_id": f"p-{i}",
                    "observed_at": (at + delay).isoformat(),
                    "outcome": int(rng.integers(0, 2)),
                }
            )
    return predictions, outcomes


def class_scores(i: int, labels: list[str]) -> dict | None:
    """Every third row unscored, every fifth scoring two classes only (the third is 0)."""
    if i % 3 == 1:
        return None
    mine = round(0.4 + (i % 7) / 20, 2)
    if i % 5 == 0:
        return {labels[i % 3]: mine, labels[(i + 1) % 3]: round(1 - mine, 2)}
    rest = round((1 - mine) / 2, 3)
    return {labels[i % 3]: mine, labels[(i + 1) % 3]: rest, labels[(i + 2) % 3]: 1 - mine - rest}


def multiclass_records(n: int):
    labels = ["cat", "dog", "bird"]
    predictions = [
        {
            "prediction_id": f"m-{i}",
            "timestamp": (NOW + timedelta(minutes=11 * i)).isoformat(),
            "model_version": "1",
            "prediction": labels[i % 3],
            "features": {"x": i % 4},
        }
        | ({"scores": class_scores(i, labels)} if class_scores(i, labels) else {})
        for i in range(n)
    ]
    outcomes = [
        {
            "prediction_id": f"m-{i}",
            "observed_at": (NOW + timedelta(days=1)).isoformat(),
            "outcome": labels[(i * 7) % 3],
        }
        for i in range(0, n, 2)
    ]
    return predictions, outcomes


def stored(model) -> dict[tuple, tuple]:
    rows = Sketch.objects.filter(model=model).values_list(
        "version_id", "segment", "period", "start", "kind", "name", "n", "missing", "data"
    )
    return {row[:6]: (row[6], row[7], bytes(row[8])) for row in rows}


def assert_same_data(kind: str, a: bytes, b: bytes) -> None:
    if kind == SketchKind.CATEGORICAL:
        assert categorical_merge([a]) == categorical_merge([b])
    elif kind == SketchKind.CONFUSION:
        assert confusion_merge([a]) == confusion_merge([b])
    else:
        (arrays_a, scalars_a), (arrays_b, scalars_b) = sparse_decode(a), sparse_decode(b)
        for x, y in zip(arrays_a, arrays_b, strict=True):
            if x.dtype.kind == "i":
                np.testing.assert_array_equal(x, y)
            else:
                np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(scalars_a, scalars_b, rtol=1e-12)


def aggregate_both_ways(model) -> tuple[dict, dict]:
    outcomes_join(model_id=model.pk)
    aggregates_refresh(model_id=model.pk, path="pandas")
    by_pandas = stored(model)
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO monitoring_dirtyhour (model_id, hour)
            SELECT DISTINCT model_id, date_trunc('hour', timestamp) FROM monitoring_prediction
            WHERE model_id = %s ON CONFLICT DO NOTHING""",
            [model.pk],
        )
    aggregates_refresh(model_id=model.pk, path="sql")
    return by_pandas, stored(model)


def assert_same(by_pandas: dict, by_sql: dict) -> None:
    assert by_pandas.keys() == by_sql.keys()
    for key, (n, missing, data) in by_pandas.items():
        assert by_sql[key][:2] == (n, missing), key
        assert_same_data(key[4], data, by_sql[key][2])


@pytest.fixture
def postgres():
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")


def test_both_paths_write_the_same_sketches_of_awkward_rows(postgres):
    model = model_create(name="paths", task="binary_classification", positive_class=1)
    predictions, outcomes = records(400)
    records_ingest(model=model, kind="predictions", records=predictions[:300], enqueue_jobs=False)
    aggregates_refresh(model_id=model.pk)  # freezes the bins of the first rows' features
    records_ingest(model=model, kind="predictions", records=predictions[300:], enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)

    by_pandas, by_sql = aggregate_both_ways(model)

    assert_same(by_pandas, by_sql)
    kinds = {(key[4], key[5]) for key in by_sql}
    assert {
        (SketchKind.SCORE, ""),
        (SketchKind.ALL_SCORES, ""),
        (SketchKind.DELAY, ""),
        (SketchKind.NUMERICAL, "age"),
        (SketchKind.CATEGORICAL, "plan"),
        (SketchKind.CATEGORICAL, "always_null"),
        (SketchKind.CATEGORICAL, "income"),
        (SketchKind.NUMERICAL, "late"),
    } <= kinds
    # One kind per model and feature: version 2.0.0 sends texts in `income` within the model's
    # first days, so `income` is categorical for every version (1.0.0's numbers as categories).
    assert (SketchKind.NUMERICAL, "income") not in kinds
    # Spot check against the raw rows: plan's category keys over version 1.0.0 on one day.
    plan = [
        v
        for (_, s, period, _, kind, name), v in by_sql.items()
        if period == "day" and name == "plan"
    ]
    counts: dict[str, int] = {}
    for _, _, data in plan:
        for key, count in categorical_merge([data])[0].items():
            counts[key] = counts.get(key, 0) + count
    assert set(counts) == {"1", "0", "basic", "2.5", "pro"}


def test_both_paths_write_the_same_confusion_tables_and_class_scores(postgres):
    model = model_create(name="paths-multi", task="multiclass_classification")
    predictions, outcomes = multiclass_records(120)
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)

    by_pandas, by_sql = aggregate_both_ways(model)

    assert_same(by_pandas, by_sql)
    assert any(key[4] == SketchKind.CONFUSION for key in by_sql)
    for kind in (SketchKind.CLASS_SCORE, SketchKind.CLASS_ALL):
        assert {key[5] for key in by_sql if key[4] == kind} == {"cat", "dog", "bird"}
    # every scored row is in each class's histogram: a class left out counts as 0
    scored = sum(1 for p in predictions if "scores" in p)
    days = [v for k, v in by_sql.items() if k[2] == "day" and k[4] == SketchKind.CLASS_ALL]
    assert sum(n for n, _, _ in days) == 3 * scored


def test_both_paths_write_the_same_loss_sums(postgres):
    # a regression version whose error model is fitted on reference rows, applied to
    # awkward rows (missing, mistyped and unseen values) by each path
    rng = np.random.default_rng(8)
    model = model_create(name="paths-regression", task="regression")
    reference = [
        {
            "features": awkward_features(i, rng) or {},
            "prediction": float(rng.normal(10, 2)),
            "outcome": float(rng.normal(10, 3)),
        }
        for i in range(1, 400)
    ]
    version_register(
        model=model, version="1", lineage={"code_version": "a"}, reference={"rows": reference}
    )
    predictions, outcomes = records(300)
    for record in predictions:
        record.update(model_version="1", prediction=float(rng.normal(10, 2)))
        record.pop("score")
    for record in outcomes:
        record["outcome"] = float(rng.normal(10, 3))
    records_ingest(model=model, kind="predictions", records=predictions, enqueue_jobs=False)
    records_ingest(model=model, kind="outcomes", records=outcomes, enqueue_jobs=False)
    outcomes_join(model_id=model.pk)
    aggregates_refresh(model_id=model.pk)  # freezes the bins the error model reads
    assert error_models_freeze(model_id=model.pk, now=NOW) == 1

    by_pandas, by_sql = aggregate_both_ways(model)

    assert_same(by_pandas, by_sql)
    loss = [key for key in by_sql if key[4] == SketchKind.LOSS]
    assert loss and sum(by_sql[key][0] for key in loss if key[2] == "hour") == 300
