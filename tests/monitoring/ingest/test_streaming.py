"""Bodies are read as streams: bounded memory, limits while reading, all or nothing."""

from __future__ import annotations

import io
import json
import tracemalloc

import pytest
from django.test import override_settings

from monitoring.ingest import columnar_json, parsers, services
from monitoring.ingest.parsers import (
    BodyError,
    BodyTooLarge,
    LimitedBody,
    Unreadable,
    parse_body,
    parse_stream,
)
from monitoring.models import IngestBatch, Prediction, QuarantinedRecord
from tests.conftest import prediction

URL = "/api/v1/models/churn/predictions"


def records_of(body: bytes, media_type: str = "application/json") -> list:
    return list(parse_body(body, media_type, "predictions"))


@pytest.mark.parametrize("read_chars", [1, 7, 64, 1 << 20])
def test_json_records_are_the_same_whatever_the_read_size(monkeypatch, read_chars):
    monkeypatch.setattr(parsers, "READ_CHARS", read_chars)
    records = [prediction(i, score=0.123456789 * (i % 8) / 7) for i in range(30)]
    records.append({"prediction_id": "ü-€", "n": 12345678901234567890, "x": [1, {"y": None}]})
    wrapped = json.dumps({"meta": {"a": [1, 2]}, "records": records, "tail": "x"}).encode()
    assert records_of(wrapped) == records
    assert records_of(json.dumps(records, indent=2).encode()) == records
    assert records_of(b" [ ] ") == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'[{"a": 1}, {"a": 2}', "ends inside"),
        (b'[{"a": 1} {"a": 2}]', "expected , or ]"),
        (b'[{"a": 1}] [', "extra data"),
        (b'{"records": [{"a": 1}], ', "not valid JSON"),
        (b'{"records": 5}', "records"),
        (b'[{"a": Infinity}]', "Infinity"),
        (b'[{"a": "\xc3\x28"}]', "UTF-8"),
        (b"", "records"),
    ],
)
def test_broken_json_raises_body_error_with_a_reason(monkeypatch, body, fragment):
    monkeypatch.setattr(parsers, "READ_CHARS", 4)
    with pytest.raises(BodyError, match=fragment):
        records_of(body)


def test_a_record_longer_than_the_limit_is_refused(monkeypatch):
    monkeypatch.setattr(parsers, "MAX_RECORD_CHARS", 1000)
    monkeypatch.setattr(parsers, "READ_CHARS", 100)
    with pytest.raises(BodyError, match="longer than 1,000 characters"):
        records_of(json.dumps([{"features": {"text": "x" * 5000}}]).encode())


def test_csv_cell_over_the_csv_field_limit_is_a_body_error():
    text = "prediction_id,timestamp,model_version,prediction,note\na,t,1,1," + "x" * 200_000
    with pytest.raises(BodyError, match="line"):
        records_of(text.encode(), "text/csv")


def test_ndjson_lines_keep_their_numbers_across_reads(monkeypatch):
    monkeypatch.setattr(parsers, "READ_CHARS", 3)
    body = b'{"a": 1}\r\n\n{broken\n{"a": 2}'
    first, broken, last = records_of(body, "application/x-ndjson")
    assert first == {"a": 1} and last == {"a": 2}
    assert isinstance(broken, Unreadable) and "line 3" in broken.message


def test_the_limit_is_enforced_while_reading_whatever_the_header_says():
    body = io.BufferedReader(LimitedBody(io.BytesIO(b"[" + b"1," * 5000 + b"1]"), 4096))
    with pytest.raises(BodyTooLarge):
        list(parse_stream(body, "application/json", "predictions"))


def test_parsing_memory_is_bounded_by_a_record_not_the_body(monkeypatch):
    monkeypatch.setattr(parsers, "READ_CHARS", 1 << 16)
    records = [prediction(i, features={f"f{j}": j * 1.5 for j in range(10)}) for i in range(20_000)]
    body = json.dumps({"records": records}).encode()
    ndjson = "\n".join(json.dumps(r) for r in records).encode()
    del records
    for payload, parse in ((body, parsers.parse_json), (ndjson, parsers.parse_ndjson)):
        tracemalloc.start()
        count = sum(1 for _ in parse(io.BytesIO(payload)))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == 20_000
        assert peak < len(payload) / 10, f"{parse.__name__}: peak {peak} for {len(payload)} bytes"


def test_column_wise_reading_memory_is_bounded_by_a_block_not_the_body(monkeypatch):
    monkeypatch.setattr(parsers, "SPOOL_MEMORY_BYTES", 1 << 16)  # the body spooled to disk
    monkeypatch.setattr(columnar_json, "BLOCK_BYTES", 1 << 17)
    features = {f"f{j}": j + 0.25 for j in range(10)}  # no whole floats: all rows column-wise
    records = [prediction(i, features=features) for i in range(60_000)]
    list(parse_body(json.dumps(records[:10]).encode(), "application/json", "predictions").chunks())
    body = json.dumps({"records": records}).encode()
    ndjson = "\n".join(json.dumps(r) for r in records).encode()
    del records
    for payload, media_type in ((body, "application/json"), (ndjson, "application/x-ndjson")):
        source = parse_body(payload, media_type, "predictions")
        tracemalloc.start()
        count = sum(len(chunk) for chunk in source.chunks())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == 60_000
        # a few blocks, and the 1 MB buffer that copies the body to its spool
        assert peak < len(payload) / 5, f"{media_type}: peak {peak} for {len(payload)} bytes"


@pytest.mark.django_db
def test_a_body_broken_after_many_stored_chunks_stores_nothing(model, writer, monkeypatch):
    monkeypatch.setattr(services, "CHUNK_RECORDS", 10)
    body = json.dumps([prediction(i) for i in range(55)])[:-30]  # cut inside the last record
    response = writer.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["detail"]
    assert not Prediction.objects.exists() and not IngestBatch.objects.exists()


@pytest.mark.django_db
def test_chunks_add_up_in_one_receipt(model, writer, monkeypatch):
    monkeypatch.setattr(services, "CHUNK_RECORDS", 7)
    records = [prediction(i) for i in range(40)] + [prediction(3), prediction(5, score=0.1)]
    records[20]["score"] = 9
    body = writer.post(URL, json.dumps(records), content_type="application/json").json()
    assert (body["received"], body["accepted"], body["duplicates"], body["rejected"]) == (
        42,
        39,
        1,
        2,
    )
    assert [error["index"] for error in body["errors"]] == [20, 41]
    assert sorted(QuarantinedRecord.objects.values_list("index", flat=True)) == [20, 41]
    assert Prediction.objects.count() == 39


@pytest.mark.django_db
@override_settings(CANARY_MAX_RECORDS=15)
def test_too_many_records_across_chunks_is_413_and_stores_nothing(model, writer, monkeypatch):
    monkeypatch.setattr(services, "CHUNK_RECORDS", 4)
    lines = "\n".join(json.dumps(prediction(i)) for i in range(16))
    response = writer.post(URL, lines, content_type="application/x-ndjson")
    assert response.status_code == 413 and "15 records" in response.json()["detail"]
    assert not Prediction.objects.exists()


@pytest.mark.django_db
@override_settings(CANARY_INGEST_RATE="2/min")
def test_a_key_over_its_rate_gets_429_with_retry_after(model, client_with):
    writer = client_with("predictions:write")
    other = client_with("predictions:write")
    for i in range(2):
        body = json.dumps([prediction(i)])
        assert writer.post(URL, body, content_type="application/json").status_code == 200
    refused = writer.post(URL, json.dumps([prediction(9)]), content_type="application/json")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert 0 < int(refused["Retry-After"]) <= 60
    assert (
        other.post(URL, json.dumps([prediction(9)]), content_type="application/json").status_code
        == 200
    )
    assert Prediction.objects.count() == 3
