"""Drill-down: the rows behind a chart point, filtered, paged and streamed out."""

from __future__ import annotations

import csv
import inspect
import io
import json
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.export import csv_cell
from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.rows import CHUNK_ROWS, ROW_FIELDS, rows_csv
from monitoring.models import Prediction
from tests.conftest import NOW, outcome, prediction

pytestmark = pytest.mark.django_db
ROWS = 2 * CHUNK_ROWS + 345  # more than two chunks and Parquet row groups


@pytest.fixture
def many_rows(model):
    records = [
        prediction(
            i,
            at=NOW + timedelta(seconds=i),
            segment="web" if i % 2 else "app",
            model_version="1.0.0" if i % 3 else "2.0.0",
            score=(i % 100) / 100,
            features={"age": i % 90, "plan": ["basic", "premium"][i % 2]},
        )
        for i in range(ROWS)
    ]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    labels = [outcome(i, outcome=i % 2, values={"revenue": 1.5}) for i in range(0, ROWS, 5)]
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    return model


def stored(**filters) -> list[str]:
    rows = Prediction.objects.filter(**filters).order_by("timestamp", "id")
    return list(rows.values_list("prediction_id", flat=True))


def table_ids(html: str) -> list[str]:
    body = html[html.index('<table class="grid small" id="rows">') :]
    return [cell.split("</td>")[0] for cell in body.split("<tr><td>")[1:]]


def test_a_chart_point_opens_its_window(many_rows, viewer):
    start = NOW + timedelta(seconds=100)
    params = {
        "metric": "accuracy",
        "start": start.isoformat(),
        "end": (start + timedelta(seconds=60)).isoformat(),
    }
    html = viewer.get("/models/churn/rows/", params).content.decode()
    assert "60 rows" in html and "the rows behind Accuracy" in html
    assert table_ids(html) == [f"p-{i}" for i in range(100, 150)]  # first page of 50


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"segment": "web"}, {"segment": "web"}),
        ({"version": "2.0.0"}, {"version__version": "2.0.0"}),
        ({"labelled": "yes"}, {"label__isnull": False}),
        ({"labelled": "no"}, {"label__isnull": True}),
        (
            {"feature": "age", "min": "10", "max": "20"},
            {"features__age__gte": 10, "features__age__lt": 20},
        ),
        ({"feature": "plan", "category": "premium"}, {"features__plan": "premium"}),
    ],
)
def test_filters(many_rows, viewer, params, expected):
    html = viewer.get("/models/churn/rows/", params).content.decode()
    ids = stored(**expected)
    assert 0 < len(ids) < ROWS
    assert f"{len(ids)} rows" in html
    assert table_ids(html) == ids[:50]


def test_pages_walk_through_the_rows(many_rows, viewer):
    html = viewer.get("/models/churn/rows/", {"segment": "app", "page": 3}).content.decode()
    assert table_ids(html) == stored(segment="app")[100:150]
    assert "page 3 of" in html


@pytest.mark.parametrize(
    "params",
    [
        {"start": "yesterday"},
        {"end": "2026-03-01T00:00:00"},
        {"labelled": "maybe"},
        {"feature": "age", "min": "ten"},
        {"min": "3"},
    ],
)
def test_bad_filters_are_400_with_a_reason(many_rows, viewer, params):
    response = viewer.get("/models/churn/rows/", params)
    assert response.status_code == 400
    assert 'class="error"' in response.content.decode()


def test_csv_download_is_streamed_and_holds_every_row(many_rows, viewer):
    assert inspect.isgenerator(rows_csv(Prediction.objects.values(*ROW_FIELDS)))
    response = viewer.get("/models/churn/rows.csv")
    assert response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="churn-rows.csv"'
    chunks = list(response.streaming_content)
    assert len(chunks) > ROWS  # one piece per row, never the whole file at once
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode())))
    assert [r["prediction_id"] for r in rows] == stored()
    first = rows[0]
    assert json.loads(first["features"]) == {"age": 0, "plan": "basic"}
    assert first["outcome"] == "0" and first["correct"] == "False" and first["version"] == "2.0.0"
    assert rows[1]["outcome"] == "" and rows[1]["delay_s"] == ""


def test_parquet_download_is_written_in_row_groups(many_rows, viewer):
    response = viewer.get("/models/churn/rows.parquet", {"labelled": "no"})
    assert response.streaming
    chunks = list(response.streaming_content)
    ids = stored(label__isnull=True)
    groups = -(-len(ids) // CHUNK_ROWS)
    assert groups >= 2 and len(chunks) == groups  # each row group is sent as soon as written
    table = pq.read_table(io.BytesIO(b"".join(chunks)))
    assert table.column("prediction_id").to_pylist() == ids
    assert pq.ParquetFile(io.BytesIO(b"".join(chunks))).num_row_groups == groups
    assert table.column("score").to_pylist()[:3] == [0.01, 0.02, 0.03]


def test_rows_are_read_while_the_response_is_sent(many_rows, viewer):
    response = viewer.get("/models/churn/rows.csv")
    body = iter(response.streaming_content)
    with CaptureQueriesContext(connection) as queries:
        assert next(body).startswith(b"prediction_id,")
    assert len(queries) == 0  # the view answered before reading a single row
    with CaptureQueriesContext(connection) as queries:
        assert next(body).startswith(b"p-0,")
    assert any("monitoring_prediction" in q["sql"] for q in queries)
    assert sum(1 for _ in body) == ROWS - 1


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [
        ("=1+2", "'=1+2"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("plain", "plain"),
        (-1.5, -1.5),
        (None, None),
        ("", ""),
    ],
)
def test_csv_cells_that_look_like_formulas_are_escaped(cell, escaped):
    assert csv_cell(cell) == escaped


def test_rows_csv_escapes_formula_cells(model, viewer):
    record = prediction(1, segment='=HYPERLINK("x")', prediction="@cmd")
    records_ingest(model=model, kind="predictions", records=[record], enqueue_jobs=False)
    body = b"".join(viewer.get("/models/churn/rows.csv").streaming_content).decode()
    row = next(iter(csv.DictReader(io.StringIO(body))))
    assert row["segment"] == '\'=HYPERLINK("x")' and row["prediction"] == "'@cmd"


def test_the_rows_tab_opens_on_the_last_day(many_rows, viewer):
    response = viewer.get("/models/churn/rows/")
    assert response.status_code == 302
    assert response["Location"].startswith("/models/churn/rows/?start=")
