"""JSON and NDJSON predictions read column-wise (PostgreSQL) mean what the records path makes
of them: the same rows stored, byte for byte, and the same rejections, for bodies of every
shape, including those Arrow or the scan refuse and hand to the records path."""

from __future__ import annotations

import io
import json
import random
from itertools import cycle, islice

import numpy as np
import pyarrow.json as pa_json
import pytest
from django.db import connection

from monitoring.ingest import columnar_json, services
from monitoring.ingest.columnar import ColumnarFallback
from monitoring.ingest.parsers import json_loads, parse_body
from monitoring.models import IngestBatch, Prediction, QuarantinedRecord
from tests.conftest import NOW, need_service, prediction

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/churn/predictions"
JSON, NDJSON = "application/json", "application/x-ndjson"

# Values of every kind a sender writes, valid or not, certain to the columns or not.
# A body's labels are numbers or words (Arrow refuses a column of both: see ODD_JSON)
LABELS = {
    "numbers": [1, 0, 2.5, 3.0, -0.0, 10**17, 1e200, None, 0.1, -7],
    "words": ["yes", "", "L" * 201, "a\x00", None, "1", "no"],
}
SCORES = [0.25, None, 1, 0, 0.123456789012345, 1e-5, 0.0001, -0.0, 1.5, 0.5]
TIMESTAMPS = [
    NOW.isoformat(),
    "2026-03-10T13:30:00.123+02:00",
    "2026-03-10 12:00:00+00:00",
    "2026-03-10T12:00:00Z",
    "2026-03-10T12:00:00",
    "2026-03-10T12:00:00.000001-05:00",
    "2026-02-30T12:00:00Z",
    "2026-03-10T12:00:00z",
    "1999-03-10T12:00:00Z",
    None,
    "2026-03-09T23:59:59.999999+00:00",
]
FEATURES = [
    {"amount": 12.25, "plan": "basic", "flag": True, "n": 7},
    {"amount": 3.0, "plan": 'say "hi"\\', "flag": False, "n": -12},
    {"amount": None, "plan": "plus", "flag": True, "n": 5},
    {"amount": 0.5, "plan": "tab\there", "flag": True, "n": 0},
    {},
    None,
    {"amount": 1e-7, "plan": "x" * 201, "flag": False, "n": 1},
    {"amount": 123456.789, "plan": "", "flag": True, "n": 2},
    {"amount": -0.5, "plan": "a\x00b", "flag": False, "n": 3},
    {"amount": 7.75, "plan": "ünïcode ☃ \u2028", "flag": True, "n": 10**18},
    {"amount": 2.5, "plan": "basic"},
]


def tricky_records(count: int, labels: str = "numbers") -> list[dict]:
    """Records cycling through the values above, every field independently."""
    columns = {
        "prediction": LABELS[labels],
        "score": SCORES,
        "timestamp": TIMESTAMPS,
        "segment": ["web", None, "app store", "s" * 201],
        "features": FEATURES,
        "model_version": ["1.0.0", "2.0.0", "v" * 101],
    }
    cycles = {name: list(islice(cycle(values), count)) for name, values in columns.items()}
    return [
        {"prediction_id": f"t-{i}", **{name: cycles[name][i] for name in columns}}
        for i in range(count)
    ]


def body_of(records: list, media_type: str) -> bytes:
    if media_type == NDJSON:
        return "".join(json.dumps(record) + "\n" for record in records).encode()
    return json.dumps({"records": records}, indent=1).encode()


def outcome_of(writer, body: bytes, media_type: str) -> dict:
    """What a request leaves: its answer, the rows stored and the records quarantined."""
    response = writer.post(URL, body, content_type=media_type)
    answer = response.json()
    answer.pop("batch_id", None)
    stored = {
        p.prediction_id: (
            p.timestamp,
            p.version.version,
            p.prediction,
            p.prediction_num,
            p.score,
            p.segment,
            json.dumps(p.features),
            p.content_md5,
        )
        for p in Prediction.objects.select_related("version")
    }
    kept = sorted(QuarantinedRecord.objects.values_list("index", "code", "field", "message", "raw"))
    Prediction.objects.all().delete()
    QuarantinedRecord.objects.all().delete()
    IngestBatch.objects.all().delete()
    return {"status": response.status_code, "answer": answer, "stored": stored, "kept": kept}


def both_paths(writer, monkeypatch, body: bytes, media_type: str) -> tuple[dict, dict, int]:
    """The outcome column-wise, then record by record; and how many records the column-wise
    request judged one by one."""
    judged = []
    validate = services.prediction_validate
    with monkeypatch.context() as patch:
        patch.setattr(services, "prediction_validate", lambda r: judged.append(1) or validate(r))
        columnar = outcome_of(writer, body, media_type)
    with monkeypatch.context() as patch:
        patch.setattr(services, "columnar_readable", lambda records: False)
        records = outcome_of(writer, body, media_type)
    return columnar, records, len(judged)


@pytest.fixture
def postgres():
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")


@pytest.mark.parametrize("media_type", [JSON, NDJSON])
@pytest.mark.parametrize("block_bytes", [1 << 21, 300])
@pytest.mark.parametrize("labels", list(LABELS))
def test_records_stored_column_wise_equal_those_stored_record_by_record(
    postgres, model, writer, monkeypatch, media_type, block_bytes, labels
):
    # given: 600 records of every kind of value, read in blocks of a few records or of all
    monkeypatch.setattr(columnar_json, "BLOCK_BYTES", block_bytes)
    body = body_of(tricky_records(600, labels), media_type)
    # when the body is posted read column-wise, then record by record
    columnar, records, judged = both_paths(writer, monkeypatch, body, media_type)
    # then the same rows are stored and the same records rejected, with the same reasons
    assert columnar == records
    answer = columnar["answer"]
    assert answer["accepted"] > 50 and answer["rejected"] > 50
    # and the rows whose values are certain never went through the records path
    assert answer["accepted"] > 600 - judged > 10


GOOD = [prediction(i, features={"age": 40.5, "plan": "basic"}) for i in range(6)]


def records_text(records: list) -> str:
    return ",".join(json.dumps(record) for record in records)


# Bodies that the scan or Arrow cannot read as the records path does, or only just can.
ODD_JSON = {
    "lone surrogate": f'[{records_text(GOOD[:3])},{{"prediction_id": "x\\ud800"}},'
    f"{records_text(GOOD[3:])}]",
    "key given twice": f'[{records_text(GOOD[:2])},{{"prediction_id": "a", "prediction_id": "b",'
    f' "timestamp": "{NOW.isoformat()}", "model_version": "1", "prediction": 1}}]',
    "NaN": f'[{records_text(GOOD[:2])},{{"prediction_id": "n", "score": NaN}}]',
    "Infinity in a feature": f'[{records_text(GOOD[:2])},{{"features": {{"a": Infinity}}}}]',
    "1e400": f'[{records_text(GOOD[:2])},{{"features": {{"a": 1e400}}}}]',
    "an integer of 30 digits": f'[{records_text(GOOD[:2])},{{"features": {{"a": {10**29}}}}}]',
    "a type that changes": f'[{records_text(GOOD[:2])},{{"features": {{"age": "old"}}}}]',
    "a record that is a number": f"[{records_text(GOOD[:2])}, 7]",
    "a list of records inside": f"[[{records_text(GOOD[:2])}]]",
    "nested too deep": f'[{records_text(GOOD[:2])},{{"features": {{"a": [[[1]]]}}}}]',
    "another member after": f'{{"records": [{records_text(GOOD)}], "more": 1}}',
    "another member before": f'{{"source": "x", "records": [{records_text(GOOD)}]}}',
    "records twice": f'{{"records": [{records_text(GOOD[:2])}], "records": []}}',
    "a trailing comma": f"[{records_text(GOOD)},]",
    "text after": f"[{records_text(GOOD)}] x",
    "no records": "[]",
    "nothing": "",
    "unclosed": f"[{records_text(GOOD)}",
    "brackets and quotes in strings": json.dumps(
        [GOOD[0] | {"segment": 'a"}]{[\\'}, GOOD[1] | {"segment": "\\\\"}, GOOD[2]]
    ),
    "escaped names": f'[{{"pr\\u0065diction_id": "e", "timestamp": "{NOW.isoformat()}", '
    '"model_version": "1", "prediction": 1, "features": {"\\u00e9t\\u00e9": 1.5}}]',
    "an unknown member with null": json.dumps([GOOD[0], GOOD[1] | {"colour": None}]),
    "a label that is a list": json.dumps([GOOD[0], GOOD[1] | {"prediction": [1]}]),
    "features that are a list": json.dumps([GOOD[0], GOOD[1] | {"features": [1]}]),
    "a timestamp that is a number": json.dumps([GOOD[0], GOOD[1] | {"timestamp": 17}]),
    "a byte order mark": "\ufeff" + json.dumps(GOOD),
    "invalid UTF-8": b"[" + json.dumps(GOOD[0] | {"segment": "\x00"}).encode()[:-2] + b'\xff"}]',
}
ODD_NDJSON = {
    "two records on a line": "\n".join(json.dumps(r) for r in GOOD[:2])
    + "\n"
    + " ".join(json.dumps(r) for r in GOOD[2:4]),
    "a record over two lines": json.dumps(GOOD[0], indent=1) + "\n" + json.dumps(GOOD[1]),
    "blank lines and CRLF": "\r\n\r\n".join(json.dumps(r) for r in GOOD) + "\r\n\n",
    "a lone CR between records": "\r".join(json.dumps(r) for r in GOOD),
    "a broken line": json.dumps(GOOD[0]) + '\n{"prediction_id": \n' + json.dumps(GOOD[1]),
    "a line that is not an object": json.dumps(GOOD[0]) + "\n[1]\n" + json.dumps(GOOD[1]),
    "a lone surrogate": json.dumps(GOOD[0]) + '\n{"segment": "\\udc80"}\n' + json.dumps(GOOD[1]),
    "a form feed line": json.dumps(GOOD[0]) + "\n\x0c\n" + json.dumps(GOOD[1]),
    "no newline at the end": "\n".join(json.dumps(r) for r in GOOD),
}


@pytest.mark.parametrize(
    ("media_type", "body"),
    [(JSON, body) for body in ODD_JSON.values()] + [(NDJSON, body) for body in ODD_NDJSON.values()],
    ids=[f"json: {name}" for name in ODD_JSON] + [f"ndjson: {name}" for name in ODD_NDJSON],
)
def test_an_odd_body_gets_the_same_answer_on_both_paths(
    postgres, model, writer, monkeypatch, media_type, body
):
    body = body if isinstance(body, bytes) else body.encode()
    columnar, records, _ = both_paths(writer, monkeypatch, body, media_type)
    assert columnar == records


def test_a_lone_surrogate_sends_its_body_to_the_records_path_and_is_quarantined_alone(
    postgres, model, writer, monkeypatch
):
    # given: 500 good records and, among them, one with a lone surrogate escape
    goods = [prediction(i, features={"age": 40.5 + i}) for i in range(500)]
    text = ",".join(json.dumps(record) for record in goods)
    bad = json.dumps(prediction(9999, segment="@")).replace('"@"', '"\\ud800"')
    cut = text.index(',{"prediction_id": "p-250"')
    body = f"[{text[:cut]},{bad}{text[cut:]}]".encode()
    # which Arrow refuses whole
    with pytest.raises(ColumnarFallback, match="surrogate"):
        list(parse_body(body, JSON, "predictions").chunks())
    # when it is posted
    answer = writer.post(URL, body, content_type=JSON).json()
    # then the bad record alone is quarantined, with its index and reason; the rest are stored
    assert (answer["accepted"], answer["rejected"]) == (500, 1)
    (error,) = answer["errors"]
    assert (error["index"], error["code"], error["field"]) == (250, "invalid_text", "segment")
    assert Prediction.objects.count() == 500


def test_arrow_reads_numbers_as_python_does_and_prints_the_certain_ones_as_repr():
    # given: decimal texts of every magnitude and length, as senders write them
    rng = np.random.default_rng(7)
    values = rng.standard_normal(20_000) * 10.0 ** rng.integers(-8, 17, 20_000)
    texts = [repr(float(v)) for v in values] + [f"{v:.{rng.integers(1, 18)}g}" for v in values]
    texts = [text if "." in text or "e" in text else text + ".0" for text in texts]
    body = "".join(f'{{"x": {text}}}\n' for text in texts).encode()
    # when Arrow reads them
    column = pa_json.read_json(io.BytesIO(body))["x"].combine_chunks()
    # then each is the float Python reads
    assert column.to_pylist() == [float(text) for text in texts]
    # and where the text is said certain it is repr() of that float
    text, certain = columnar_json.float_text(column)
    sure = [t for t, ok in zip(text.to_pylist(), certain.to_pylist(), strict=True) if ok]
    assert sure == [repr(float(t)) for t in sure]
    assert len(sure) > len(texts) / 3


def test_a_body_read_column_wise_keeps_the_records_limit(postgres, model, writer, settings):
    settings.CANARY_MAX_RECORDS = 5
    body = body_of([prediction(i, features={"age": 0.5}) for i in range(6)], JSON)
    response = writer.post(URL, body, content_type=JSON)
    assert response.status_code == 413 and not Prediction.objects.exists()


def test_a_conflict_found_column_wise_keeps_the_record_as_sent(postgres, model, writer):
    first = prediction(1, features={"age": 0.5})
    writer.post(URL, json.dumps([first]), content_type=JSON)
    again = first | {"score": 0.25}
    answer = writer.post(URL, json.dumps([prediction(2), again]), content_type=JSON).json()
    assert [error["code"] for error in answer["errors"]] == ["conflict"]
    (kept,) = QuarantinedRecord.objects.all()
    assert (kept.index, json_loads(kept.raw)) == (1, again)


def test_random_records_agree_on_both_paths(postgres, model, writer, monkeypatch):
    """Records drawn at random from the values above, in random blocks."""
    rng = random.Random(3)
    monkeypatch.setattr(columnar_json, "BLOCK_BYTES", rng.randrange(200, 5_000))
    records = tricky_records(300)
    for record in records:
        for name in rng.sample(sorted(record), rng.randrange(0, 3)):
            if name != "prediction_id":
                del record[name]
    rng.shuffle(records)
    columnar, by_record, _ = both_paths(writer, monkeypatch, body_of(records, NDJSON), NDJSON)
    assert columnar == by_record
