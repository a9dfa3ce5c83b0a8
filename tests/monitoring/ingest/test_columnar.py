"""CSV predictions read column-wise (PostgreSQL) mean what the records path makes of them."""

from __future__ import annotations

import csv
import io
import json
from itertools import cycle, islice

import pytest
from django.db import connection

from monitoring.ingest import services
from monitoring.ingest.parsers import parse_body
from monitoring.models import Prediction
from tests.conftest import need_service

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/churn/predictions"
CELLS = {
    "amount": [
        "0",
        "-5",
        "007",
        "12345678901234567",
        "0.5",
        "1.50",
        "-0.0",
        "0.0001",
        "0.00001",
        "1e5",
        "3.0",
        "",
        "+4",
        ".5",
        "1_000",
    ],
    "plan": [
        "basic",
        'say "hi"',
        "back\\slash",
        "ünïcode",
        "A12",
        "nan",
        "Infinity",
        " ",
        "true",
        "True",
        "FALSE",
        "",
        "x" * 201,
        "١٢",
        "2026-03-01",
    ],
    "flag": ["true", "false", "", "1", "0"],
}
LABELS = ["1", "0", "yes", "True", "2.5", "007", "no way", "-3", "inf"]
SCORES = ["", "0", "1", "0.25", "0.50", "1e-1", "2", "0.123456789012"]
TIMESTAMPS = [
    "2026-03-10T12:00:00Z",
    "2026-03-10T13:30:00.123+02:00",
    "2026-03-10 12:00:00+00:00",
    "2026-03-10T12:00:00",
    "2026-03-10T12:00:00.000001-05:00",
    "2026-02-30T12:00:00Z",
]


def tricky_csv(rows: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["prediction_id", "timestamp", "model_version", "prediction", "score", "segment", *CELLS]
    )
    columns = [
        [f"p-{i}" for i in range(rows)],
        islice(cycle(TIMESTAMPS), rows),
        islice(cycle(["1.0", "2.0", "1.0"]), rows),
        islice(cycle(LABELS), rows),
        islice(cycle(SCORES), rows),
        islice(cycle(["web", "", "app store"]), rows),
        *(islice(cycle(values), rows) for values in CELLS.values()),
    ]
    writer.writerows(zip(*columns, strict=True))
    return out.getvalue()


# Columns regular enough for the shortcuts: UTC timestamps to the second, numbers, plain words
# mixed with numbers and with cells holding digits (which the records path must judge).
REGULAR = {
    "timestamp": ["2026-03-10T12:00:00Z", "2026-03-10T13:30:05+00:00", "2026-03-11T00:00:59Z"],
    "amount": ["0", "-5", "0.5", "", "1e5", "007", "3.0", "12.25"],
    "plan": ["basic", "plus plan", "a_b", "x:y/z-w.v", "", "A12", "Basic", "7", "-0.5", "2e3"],
    "flag": ["1", "0", ""],
}


def regular_csv(rows: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prediction_id", "model_version", "prediction", "score", *REGULAR])
    columns = [
        [f"r-{i}" for i in range(rows)],
        islice(cycle(["1.0", "2.0"]), rows),
        islice(cycle(["1", "0", "yes"]), rows),
        islice(cycle(["0.25", "", "1", "2"]), rows),  # a score of 2 is rejected
        *(islice(cycle(values), rows) for values in REGULAR.values()),
    ]
    writer.writerows(zip(*columns, strict=True))
    return out.getvalue()


# Multiclass `score:CLASS` cells, a row's three at a time: plain probabilities that sum to 1
# (kept column-wise), ones that do not, empty cells (a class left out, or no scores at all),
# forms the records path must judge (trailing zeros, exponents), a predicted class without a
# score, and a lone score.
SCORE_ROWS = [
    ("0.7", "0.2", "0.1"),
    ("0", "1", "0"),
    ("0.25", "0.5", "0.25"),
    ("", "", ""),
    ("0.6", "0.4", ""),
    ("0.5", "0.3", "0.1"),
    ("0.50", "0.25", "0.25"),
    ("1e-1", "0.8", "0.1"),
    ("", "0.6", "0.4"),
    ("1", "", ""),
    ("0.3333", "0.3333", "0.3334"),
    ("0.3333", "0.3333", "0.3333"),
]


def scores_csv(rows: int) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    classes = ["a", 'say "b"', "1"]
    writer.writerow(
        ["prediction_id", "timestamp", "model_version", "prediction"]
        + [f"score:{name}" for name in classes]
        + ["plan"]
    )
    columns = [
        [f"s-{i}" for i in range(rows)],
        islice(cycle(["2026-03-10T12:00:00Z", "2026-03-10T13:30:05+00:00"]), rows),
        islice(cycle(["1.0", "2.0"]), rows),
        islice(cycle(["a", "1", "true", 'say "b"', "a"]), rows),
        islice(cycle(SCORE_ROWS), rows),
        islice(cycle(["basic", "7", ""]), rows),
    ]
    for pid, ts, version, label, cells, plan in zip(*columns, strict=True):
        writer.writerow([pid, ts, version, label, *cells, plan])
    return out.getvalue()


@pytest.mark.parametrize("make_body", [tricky_csv, regular_csv, scores_csv])
def test_csv_rows_stored_column_wise_equal_the_same_records_sent_as_json(
    model, writer, monkeypatch, make_body
):
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")
    body = make_body(400)
    validated = []
    validate = services.prediction_validate
    monkeypatch.setattr(
        services, "prediction_validate", lambda record: validated.append(1) or validate(record)
    )
    # when the CSV body is posted
    first = writer.post(URL, body, content_type="text/csv").json()
    # then most rows never went through the record-by-record validation
    assert first["received"] == 400 and 0 < len(validated) < 400
    assert first["accepted"] > 100 and first["rejected"] > 0
    # and the same records, typed by the records path and sent as JSON, are all duplicates
    records = list(parse_body(body.encode(), "text/csv", "predictions"))
    monkeypatch.setattr(services, "columnar_readable", lambda records: False)
    second = writer.post(URL, json.dumps(records), content_type="application/json").json()
    assert (second["accepted"], second["duplicates"]) == (0, first["accepted"])
    assert second["rejected"] == first["rejected"]
    assert [(e["index"], e["field"]) for e in second["errors"]] == [
        (e["index"], e["field"]) for e in first["errors"]
    ]
    # and what is stored is what the records path would store
    stored = {p.prediction_id: p for p in Prediction.objects.all()}
    for record in records:
        if record["prediction_id"] not in stored:
            continue
        row, problems = validate(record)
        assert not problems
        kept = stored[record["prediction_id"]]
        assert kept.features == json.loads(row.features_json), record
        assert kept.scores == (json.loads(row.scores_json) if row.scores_json else None), record
        assert (kept.prediction, kept.prediction_num, kept.score, kept.segment) == (
            row.prediction,
            row.prediction_num,
            row.score,
            row.segment,
        )
        assert kept.timestamp == row.timestamp and kept.content_md5 == row.content_md5


def test_a_ragged_csv_falls_back_to_the_records_path_with_exact_indexes(model, writer):
    body = tricky_csv(30).splitlines()
    body[5] += ",extra"
    response = writer.post(URL, "\n".join(body) + "\n", content_type="text/csv").json()
    ragged = [e for e in response["errors"] if "cells" in e["message"]]
    assert [e["index"] for e in ragged] == [4]
    assert response["received"] == 30
