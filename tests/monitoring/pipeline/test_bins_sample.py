"""The sample the bins are frozen from, read by PostgreSQL: every kind of stored value gives
the kind and the edges that Python's reading of the same documents gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import connection

from factory.models import ModelVersion
from factory.services import version_register
from monitoring.ingest.partitions import partitions_ensure
from monitoring.models import Prediction
from monitoring.pipeline.bins import features_sample
from monitoring.stats.histograms import numeric_bin_edges
from monitoring.stats.profile import feature_kind, numeric_values
from tests.conftest import need_service

pytestmark = pytest.mark.django_db
START = datetime(2026, 10, 1, tzinfo=UTC)
NAMES = {"amount", "flag", "plan", "mixed", "empty", "nested", "absent"}


def documents(rng) -> list[str]:
    """JSON texts as a source could have stored them past validation: numbers beyond float
    range either way, booleans, text, a number among texts, nulls, objects, and documents
    that are not objects."""
    texts = []
    for i in range(400):
        amount = f"{rng.lognormal(3, 1):.4f}"
        if i % 97 == 0:
            amount = "1" + "0" * 400  # a 401-digit integer: not a float
        if i % 89 == 0:
            amount = "1e-400"  # under the smallest float: Python reads 0.0
        flag = "true" if i % 2 else "false"
        mixed = '"n/a"' if i == 7 else str(i)
        texts.append(
            f'{{"amount": {amount}, "flag": {flag}, "plan": "p{i % 3}", "mixed": {mixed}, '
            f'"empty": null, "nested": {{"a": {i}}}}}'
        )
    return [*texts, "[1, 2]", '"text"', "null"]


@pytest.fixture
def stored(model):
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    version_register(model=model, version="1.0.0", lineage={"code_version": "test"})
    version = ModelVersion.objects.get(model=model)
    partitions_ensure([START])
    texts = documents(np.random.default_rng(5))
    with connection.cursor() as cursor:
        for i, text in enumerate(texts):
            cursor.execute(
                """INSERT INTO monitoring_prediction (model_id, version_id, prediction_id,
                    timestamp, segment, prediction, content_md5, features)
                VALUES (%s, %s, %s, %s, '', '1', '', %s::jsonb)""",
                [model.pk, version.pk, f"p{i}", START + timedelta(minutes=i), text],
            )
    return model


def test_the_sample_has_the_kinds_and_edges_python_reads_in_the_same_documents(stored):
    # given the stored documents as Python reads them
    read = Prediction.objects.filter(model=stored).values_list("features", flat=True)
    rows = [each if isinstance(each, dict) else {} for each in read]
    values = {name: [row.get(name) for row in rows] for name in NAMES}
    # when
    sample = features_sample(stored, NAMES)
    # then
    kinds = {name: kind for name, (kind, _) in sample.items()}
    expected = {name: feature_kind(values[name]) for name in NAMES}
    assert kinds == {name: kind for name, kind in expected.items() if kind is not None}
    assert kinds == {"amount": "numerical", "mixed": "categorical", "flag": "categorical",
                     "plan": "categorical", "nested": "categorical"}  # fmt: skip
    numbers = sample["amount"][1]
    want = numeric_values(values["amount"])
    assert np.isnan(numbers).sum() == np.isnan(want).sum() - values["amount"].count(None)
    np.testing.assert_array_equal(numeric_bin_edges(numbers), numeric_bin_edges(want))
    assert json.loads("1e-400") in numbers  # read as Python reads it
