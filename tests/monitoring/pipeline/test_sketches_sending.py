"""Sketches sent while the slices are computed (`sketches_sending`): the COPY stays open
through the block, so a block that fails must leave no sketch stored, and the connection
usable for the chunk's retry an hour at a time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from psycopg.errors import UniqueViolation

from factory.models import ModelVersion
from factory.services import model_create
from monitoring.models import Period, Sketch, SketchKind
from monitoring.pipeline.sketches import sketches_sending
from tests.conftest import NOW, need_service

pytestmark = pytest.mark.django_db


@pytest.fixture
def sketch_rows():
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    model = model_create(name="sending", task="binary_classification", positive_class=1)
    version = ModelVersion.objects.create(model=model, version="1.0")
    hours = [NOW - timedelta(hours=h) for h in range(3)]
    rows = [
        (model.pk, version.pk, "north", Period.HOUR, hour, SketchKind.CATEGORICAL, name, 3, 0, b"x")
        for hour in hours
        for name in ("plan", "region")
    ]
    return model, rows


def test_the_rows_sent_are_stored_once_the_block_ends(sketch_rows):
    model, rows = sketch_rows
    with sketches_sending(rows):
        pass  # the block may compute, not query: the connection is busy with the COPY
    stored = Sketch.objects.filter(model=model).values_list("start", "name", "n", "data")
    assert sorted((s, n, c, bytes(d)) for s, n, c, d in stored) == sorted(
        (row[4], row[6], row[7], row[9]) for row in rows
    )


def test_a_block_that_fails_stores_nothing_and_the_connection_goes_on(sketch_rows):
    model, rows = sketch_rows
    failing = pytest.raises(ValueError, match="a slice failed")
    with failing, transaction.atomic(), sketches_sending(rows):  # the chunk's savepoint
        raise ValueError("a slice failed")
    assert not Sketch.objects.filter(model=model).exists()
    with sketches_sending(rows[:2]):  # the retry of one hour
        pass
    assert Sketch.objects.filter(model=model).count() == 2


def test_a_row_the_database_refuses_fails_the_block_and_stores_nothing(sketch_rows):
    model, rows = sketch_rows
    refused = pytest.raises(UniqueViolation, match="sketch_unique_by_kind")
    with refused, transaction.atomic(), sketches_sending([*rows, rows[0]]):  # a sketch twice
        pass
    assert not Sketch.objects.filter(model=model).exists()
