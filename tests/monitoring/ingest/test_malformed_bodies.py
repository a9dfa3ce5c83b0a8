"""Malformed bodies of every kind: a clear 4xx problem, never a 500, and nothing stored."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from monitoring.models import IngestBatch, Outcome, Prediction, QuarantinedRecord
from tests.conftest import prediction

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/churn/predictions"
OUTCOMES_URL = "/api/v1/models/churn/outcomes"
JSON, NDJSON, CSV, PARQUET = (
    "application/json",
    "application/x-ndjson",
    "text/csv",
    "application/vnd.apache.parquet",
)
GOOD = json.dumps([prediction(i) for i in range(3)])
HEADER = "prediction_id,timestamp,model_version,prediction,score\n"


def parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def wrong_schema_parquet() -> bytes:
    return parquet(pa.table({"prediction": [1], "features": [[1, 2]]}))


MALFORMED = {
    "truncated JSON": (JSON, GOOD[:-20].encode(), "not valid JSON"),
    "JSON of the wrong type": (JSON, b'{"records": {"prediction_id": "a"}}', "records"),
    "a JSON number": (JSON, b"42", "records"),
    "JSON with NaN": (JSON, b'[{"prediction_id": "a", "score": NaN}]', "NaN"),
    "JSON with Infinity": (JSON, b'[{"prediction_id": "a", "score": -Infinity}]', "Infinity"),
    "JSON with a huge string": (
        JSON,
        json.dumps([prediction(1), prediction(2, segment="x" * 2_000_000)]).encode(),
        "longer than 1,000,000 characters",
    ),
    "JSON in invalid UTF-8": (JSON, GOOD.encode()[:-40] + b"\xff\xfe" + b"}]", "UTF-8"),
    "JSON with trailing garbage": (JSON, GOOD.encode() + b" ]", "extra data"),
    "empty JSON body": (JSON, b"", "records"),
    "NDJSON in invalid UTF-8": (NDJSON, b'{"a": 1}\n{"b": "\xc3"}\n', "UTF-8"),
    "NDJSON with a huge line": (NDJSON, b'{"a": "' + b"x" * 1_100_000 + b'"}\n', "longer"),
    "CSV without a required column": (CSV, b"prediction_id,prediction\na,1\n", "timestamp"),
    "CSV without a header": (CSV, b"", "header"),
    "CSV in invalid UTF-8": (
        CSV,
        HEADER.encode() + b"a,2026-03-10T12:00:00Z,1,\xe9,0.5\n",
        "UTF-8",
    ),
    "CSV with a huge cell": (CSV, (HEADER + "a,t,1,1," + "9" * 300_000 + "\n").encode(), "CSV"),
    "Parquet with a wrong schema": (PARQUET, wrong_schema_parquet(), "prediction_id"),
    "Parquet that is not Parquet": (PARQUET, b"PAR1 this is not a parquet file", "Parquet"),
    "truncated Parquet": (PARQUET, wrong_schema_parquet()[:-30], "Parquet"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_body_is_a_4xx_problem_and_stores_nothing(model, writer, case):
    media_type, body, fragment = MALFORMED[case]
    response = writer.post(URL, body, content_type=media_type)
    assert 400 <= response.status_code < 500, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    assert fragment in response.json()["detail"], response.json()["detail"]
    assert not IngestBatch.objects.exists()
    assert not Prediction.objects.exists() and not QuarantinedRecord.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        (JSON, b"[1, 2]"),
        (JSON, b'[{"prediction_id": 5, "observed_at": [], "outcome": {}}]'),
        (JSON, b'[{"values": 3}]'),
        (
            JSON,
            b'[{"prediction_id": "a\\u0000", "observed_at": "2026-03-10T12:00:00Z", "outcome": 1}]',
        ),
        (
            JSON,
            b'[{"prediction_id": "a", "observed_at": "2026-03-10T12:00:00Z", '
            b'"outcome": "\\u0000"}]',
        ),
        (
            JSON,
            b'[{"prediction_id": "a", "observed_at": "2026-03-10T12:00:00Z", '
            b'"values": {"\\u0000": 1}}]',
        ),
        (CSV, b"prediction_id,observed_at,outcome\na\x00,2026-03-10T12:00:00Z,1\n"),
        (NDJSON, b'{"prediction_id": "a", "outcome": 1, "observed_at": "2026-03-10T12:00:00Z"\x00'),
    ],
)
def test_wrong_types_inside_readable_records_are_rejected_per_record(model, writer, body):
    media_type, body = body
    response = writer.post(OUTCOMES_URL, body, content_type=media_type)
    assert response.status_code == 200
    assert response.json()["accepted"] == 0 and response.json()["rejected"] >= 1
    assert not Outcome.objects.exists()
    assert QuarantinedRecord.objects.count() == response.json()["rejected"]
