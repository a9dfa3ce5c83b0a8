"""Multiclass `scores` at the door, in every format: stored as sent, and a malformed one
quarantined alone with the reason, the valid records beside it kept."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.services import model_create
from monitoring.models import Prediction, QuarantinedRecord
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/iris/predictions"
GOOD = {"setosa": 0.7, "versicolor": 0.2, "virginica": 0.1}
# (scores, the field named, words of the message) of each malformed kind
MALFORMED = [
    ({"setosa": "high", "versicolor": 0.3}, "scores.setosa", "between 0 and 1"),
    ({"setosa": 1.2, "versicolor": 0.3}, "scores.setosa", "between 0 and 1"),
    ({"setosa": 0.5, "versicolor": 0.3}, "scores", "sum to 0.8"),
    ({"versicolor": 0.6, "virginica": 0.4}, "scores", "predicted class 'setosa'"),
]


@pytest.fixture
def iris(db):
    return model_create(name="iris", task="multiclass_classification")


def record(i: int, scores: dict | None = None) -> dict:
    out = {
        "prediction_id": f"p-{i}",
        "timestamp": NOW.isoformat(),
        "model_version": "1",
        "prediction": "setosa",
        "features": {"petal": 1.5},
    }
    if scores is not None:
        out["scores"] = scores
    return out


def records() -> list[dict]:
    """Two valid records, then one of each malformed kind."""
    return [record(0, GOOD), record(1, GOOD)] + [
        record(2 + k, scores) for k, (scores, _, _) in enumerate(MALFORMED)
    ]


CSV_ROWS = [  # (setosa cell, versicolor cell, the field named, words of the message)
    ("0.7", "0.3", None, None),
    ("0.4", "0.6", None, None),
    ("high", "0.3", "scores.setosa", "between 0 and 1"),
    ("1.2", "0.3", "scores.setosa", "between 0 and 1"),
    ("0.5", "0.3", "scores", "sum to 0.8"),
    ("", "1", "scores", "two or more classes"),  # an empty cell leaves its class out
]


def csv_body() -> str:
    lines = ["prediction_id,timestamp,model_version,prediction,score:setosa,score:versicolor,petal"]
    for i, (setosa, versicolor, _, _) in enumerate(CSV_ROWS):
        lines.append(f"p-{i},{NOW.isoformat()},1,setosa,{setosa},{versicolor},1.5")
    return "\n".join(lines) + "\n"


def assert_receipt(body: dict, valid: int, malformed: list[tuple[int, tuple]]) -> None:
    assert body["accepted"] == valid and body["rejected"] == len(malformed)
    errors = {error["index"]: error for error in body["errors"]}
    for index, (_, field, words) in malformed:
        assert errors[index]["field"] == field, errors[index]
        assert words in errors[index]["message"]
    assert QuarantinedRecord.objects.count() == len(malformed)


@pytest.mark.parametrize("ndjson", [False, True])
def test_json_scores_are_stored_and_malformed_ones_quarantined_alone(iris, writer, ndjson):
    if ndjson:
        text = "\n".join(json.dumps(item) for item in records())
        answer = writer.post(URL, text, content_type="application/x-ndjson")
    else:
        answer = writer.post(
            URL, json.dumps({"records": records()}), content_type="application/json"
        )
    assert answer.status_code == 200
    assert_receipt(answer.json(), 2, [(2 + k, case) for k, case in enumerate(MALFORMED)])
    assert Prediction.objects.get(prediction_id="p-0").scores == GOOD


def test_csv_score_columns_make_the_scores(iris, writer):
    answer = writer.post(URL, csv_body(), content_type="text/csv")
    assert answer.status_code == 200
    malformed = [(i, (None, field, words)) for i, (_, _, field, words) in enumerate(CSV_ROWS)]
    assert_receipt(answer.json(), 2, malformed[2:])
    stored = Prediction.objects.get(prediction_id="p-0")
    assert stored.scores == {"setosa": 0.7, "versicolor": 0.3}
    assert stored.features == {"petal": 1.5}  # score columns are no features


def test_csv_empty_score_cells_mean_no_scores(iris, writer):
    text = (
        "prediction_id,timestamp,model_version,prediction,score:a,score:b\n"
        f"p-0,{NOW.isoformat()},1,a,,\n"
    )
    assert writer.post(URL, text, content_type="text/csv").json()["accepted"] == 1
    assert Prediction.objects.get(prediction_id="p-0").scores is None


def test_parquet_score_columns_make_the_scores(iris, writer):
    table = pa.table(
        {
            "prediction_id": ["p-0", "p-1", "p-2"],
            "timestamp": [NOW.isoformat()] * 3,
            "model_version": ["1"] * 3,
            "prediction": ["setosa"] * 3,
            "score:setosa": [0.6, 0.5, -0.1],
            "score:versicolor": [0.4, 0.4, 1.1],
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    answer = writer.post(URL, buffer.getvalue(), content_type="application/vnd.apache.parquet")
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (1, 2)
    errors = {error["index"]: error for error in body["errors"]}
    assert errors[1]["field"] == "scores" and "sum to 0.9" in errors[1]["message"]
    assert errors[2]["field"] in ("scores.setosa", "scores.versicolor")
    assert Prediction.objects.get(prediction_id="p-0").scores == {"setosa": 0.6, "versicolor": 0.4}


def test_the_same_scores_again_are_a_duplicate_and_other_scores_a_conflict(iris, writer):
    first = {"records": [record(0, GOOD)]}
    writer.post(URL, json.dumps(first), content_type="application/json")
    again = writer.post(URL, json.dumps(first), content_type="application/json").json()
    assert again["duplicates"] == 1
    other = {"records": [record(0, {"setosa": 0.6, "versicolor": 0.4})]}
    body = writer.post(URL, json.dumps(other), content_type="application/json").json()
    assert body["rejected"] == 1 and body["errors"][0]["code"] == "conflict"


def test_a_single_class_is_not_a_probability_vector(iris, writer):
    body = {"records": [record(0, {"setosa": 1.0}), record(1, GOOD)]}
    answer = writer.post(URL, json.dumps(body), content_type="application/json").json()
    assert answer["accepted"] == 1
    assert answer["errors"][0]["field"] == "scores"
    assert "two or more classes" in answer["errors"][0]["message"]


def test_the_schema_describes_scores(writer):
    schema = writer.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    record = schema["components"]["schemas"]["PredictionRecord"]["properties"]
    assert "score:CLASS" in record["scores"]["description"]
    body = schema["paths"]["/api/v1/models/{model}/predictions"]["post"]["requestBody"]
    assert set(body["content"]) >= {"application/json", "text/csv"}
