"""Poison records: every value that could break a job later is quarantined at the door with its
code, in every body format that can carry it, while its neighbours are stored; the jobs then
compute, from the good records alone, what scikit-learn computes from them."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from sklearn import metrics as skm

from accounts.roles import Role, user_role_set
from config.env import env_datetime
from monitoring.ingest import services
from monitoring.models import Prediction, QuarantinedRecord
from tests.conftest import NOW

pytestmark = pytest.mark.django_db
BASE = "/api/v1/models/churn"
JSON, NDJSON, CSV, PARQUET = (
    "application/json",
    "application/x-ndjson",
    "text/csv",
    "application/vnd.apache.parquet",
)
GOOD_PER_FORMAT = 30
COLUMNS = ("prediction_id", "timestamp", "model_version", "prediction", "score", "segment")
DROP = object()  # a field the case removes


class Raw(str):
    """JSON text written as it is (a literal json.dumps cannot write, such as 1e309)."""


def deep(levels: int) -> Raw:
    return Raw("[" * levels + "]" * levels)


FAR_FUTURE = (datetime.now(UTC) + timedelta(days=3)).isoformat()
# name: (changes to a good prediction, code, formats: j JSON, n NDJSON, c CSV, p Parquet)
PREDICTION_POISON = {
    "year 9999": ({"timestamp": "9999-12-31T23:00:00Z"}, "out_of_range", "jncp"),
    "year 9999 at -14:00": ({"timestamp": "9999-12-31T23:59:59-14:00"}, "out_of_range", "jncp"),
    "year 1 at +14:00": ({"timestamp": "0001-01-01T00:00:00+14:00"}, "out_of_range", "jncp"),
    "before the floor": ({"timestamp": "1999-12-31T23:59:59Z"}, "out_of_range", "jncp"),
    "beyond the skew": ({"timestamp": FAR_FUTURE}, "out_of_range", "jncp"),
    "offset of 24 hours": ({"timestamp": "2026-03-10T12:00:00+24:00"}, "invalid", "jncp"),
    "offset of 75 minutes": ({"timestamp": "2026-03-10T12:00:00+05:75"}, "invalid", "jncp"),
    "week date": ({"timestamp": "2026-W10-2T12:00:00Z"}, "invalid", "jncp"),
    "no zone": ({"timestamp": "2026-03-10T12:00:00"}, "invalid", "jncp"),
    "February 30th": ({"timestamp": "2026-02-30T12:00:00Z"}, "invalid", "jncp"),
    "timestamp as a number": ({"timestamp": 1773144000}, "invalid", "jn"),
    "label of 210 digits": ({"prediction": 1.2345678901234568e209}, "out_of_range", "jn"),
    "integer of 401 digits": ({"prediction": 10**400}, "out_of_range", "jn"),
    "1e309": ({"prediction": Raw("1e309")}, "not_finite", "jn"),
    "feature of 401 digits": ({"features": {"age": 10**400}}, "out_of_range", "jn"),
    "feature 1e200": ({"features": {"age": 1e200}}, "out_of_range", "jnp"),
    "feature NaN": ({"features": {"age": float("nan")}}, "not_finite", "p"),
    "feature Infinity": ({"features": {"age": float("inf")}}, "not_finite", "p"),
    "score NaN": ({"score": float("nan")}, "invalid", "p"),
    "score 'NaN'": ({"score": "NaN"}, "invalid", "jnc"),
    "score 'Infinity'": ({"score": "Infinity"}, "invalid", "jnc"),
    "lone surrogate in the id": ({"prediction_id": "x\ud800"}, "invalid_text", "jn"),
    "lone surrogate in a feature name": ({"features": {"\udfff": 1}}, "invalid_text", "jn"),
    "lone surrogate in a feature value": ({"features": {"plan": "\ud83d"}}, "invalid_text", "jn"),
    "lone surrogate in the segment": ({"segment": "\udc80"}, "invalid_text", "jn"),
    "lone surrogate in the version": ({"model_version": "1\ud800"}, "invalid_text", "jn"),
    "lone surrogate in the label": ({"prediction": "\ud800"}, "invalid_text", "jn"),
    "NUL in the id": ({"prediction_id": "a\x00b"}, "invalid_text", "jncp"),
    "NUL in the segment": ({"segment": "web\x00"}, "invalid_text", "jncp"),
    "NUL in a feature name": ({"features": {"a\x00": 1}}, "invalid_text", "jn"),
    "id of 201 characters": ({"prediction_id": "i" * 201}, "too_long", "jncp"),
    "label of 201 characters": ({"prediction": "L" * 201}, "too_long", "jnc"),
    "segment of 201 characters": ({"segment": "s" * 201}, "too_long", "jncp"),
    "version of 101 characters": ({"model_version": "v" * 101}, "too_long", "jncp"),
    "feature name of 101 characters": ({"features": {"f" * 101: 1}}, "too_long", "jn"),
    "nested 5,000 deep": ({"features": {"age": deep(5_000)}}, "too_deep", "jn"),
    "nested 40 deep": ({"features": {"age": deep(40)}}, "too_deep", "jn"),
    "empty id": ({"prediction_id": ""}, "required", "jnp"),
    "id as a number": ({"prediction_id": 7}, "invalid", "jn"),
    "features as a list": ({"features": [1, 2]}, "invalid", "jn"),
    "label as an object": ({"prediction": {"a": 1}}, "invalid", "jn"),
    "unknown field": ({"colour": "red"}, "invalid", "jn"),
    "no timestamp": ({"timestamp": DROP}, "required", "jn"),
}
OUTCOME_POISON = {
    "observed at year 9999 -14:00": (
        {"observed_at": "9999-12-31T23:59:59-14:00"},
        "out_of_range",
    ),
    "observed at year 1 +14:00": ({"observed_at": "0001-01-01T00:00:00+14:00"}, "out_of_range"),
    "outcome of 401 digits": ({"outcome": 10**400}, "out_of_range"),
    "value of 401 digits": ({"values": {"revenue": 10**400}}, "out_of_range"),
    "value 1e200": ({"values": {"revenue": 1e200}}, "out_of_range"),
    "value 1e309": ({"values": {"revenue": Raw("1e309")}}, "not_finite"),
    "lone surrogate in the outcome": ({"outcome": "\ud800"}, "invalid_text"),
    "lone surrogate in a value name": ({"values": {"\ud800": 1}}, "invalid_text"),
    "value nested 5,000 deep": ({"values": {"revenue": deep(5_000)}}, "too_deep"),
}


def good(fmt: str, i: int) -> dict:
    """A good prediction; every fifth has no age, so missing_rate has something to count. Ages
    have a fraction, which the columns can vouch for (a whole float such as 21.0 could have
    been sent as 21, which the records path writes differently: the columns leave it to it)."""
    return {
        "prediction_id": f"{fmt}-g{i}",
        "timestamp": (NOW + timedelta(minutes=i)).isoformat(),
        "model_version": "1.0.0",
        "prediction": i % 2,
        "score": round(0.05 + 0.9 * ((i * 7) % 11) / 10, 2),
        "segment": "web",
        "features": {"age": None if i % 5 == 0 else 20.5 + i, "plan": "basic" if i % 3 else "pro"},
    }


def changed(base: dict, changes: dict) -> dict:
    """The record with the changes made; a change to known features or values keeps the rest."""
    record = dict(base)
    for name, value in changes.items():
        known = base.get(name)
        if value is DROP:
            del record[name]
        elif isinstance(value, dict) and isinstance(known, dict) and value.keys() <= known.keys():
            record[name] = known | value
        else:
            record[name] = value
    return record


def json_text(value) -> str:
    """JSON with Raw values written as they are."""
    raws = {}

    def mark(item):
        if isinstance(item, Raw):
            raws[key := f"@raw{len(raws)}@"] = item
            return key
        if isinstance(item, dict):
            return {name: mark(inner) for name, inner in item.items()}
        if isinstance(item, list):
            return [mark(inner) for inner in item]
        return item

    text = json.dumps(mark(value))
    for key, raw in raws.items():
        text = text.replace(f'"{key}"', raw)
    return text


def cell(value) -> str:
    return "" if value is None else str(value)


def csv_body(records: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, "age", "plan"])
    for record in records:
        features = record["features"]
        row = [cell(record.get(name)) for name in COLUMNS]
        writer.writerow([*row, cell(features.get("age")), cell(features.get("plan"))])
    return out.getvalue().encode()


def parquet_body(records: list[dict]) -> bytes:
    def column(name, kind, source=None):
        return pa.array([(source or record).get(name) for record in records], kind)

    table = pa.table(
        {
            "prediction_id": column("prediction_id", pa.string()),
            "timestamp": column("timestamp", pa.string()),
            "model_version": column("model_version", pa.string()),
            "prediction": column("prediction", pa.int64()),
            "score": column("score", pa.float64()),
            "segment": column("segment", pa.string()),
            "age": pa.array([record["features"].get("age") for record in records], pa.float64()),
            "plan": pa.array([record["features"].get("plan") for record in records], pa.string()),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def body_of(fmt: str, records: list[dict]) -> tuple[str, bytes]:
    if fmt == "j":
        return JSON, json_text(records).encode()
    if fmt == "n":
        return NDJSON, "".join(json_text(record) + "\n" for record in records).encode()
    if fmt == "c":
        return CSV, csv_body(records)
    return PARQUET, parquet_body(records)


def interleaved(goods: list[dict], poison: list[tuple[dict, str]]) -> tuple[list, dict]:
    """Good and poison records taking turns; the expected code of each poison record by index."""
    records, expected = [], {}
    for turn in range(max(len(goods), len(poison))):
        records += goods[turn : turn + 1]
        if turn < len(poison):
            expected[len(records)] = poison[turn][1]
            records.append(poison[turn][0])
    return records, expected


def post_and_check(writer, kind: str, fmt: str, goods: list, poison: list) -> None:
    records, expected = interleaved(goods, poison)
    media_type, body = body_of(fmt, records)
    response = writer.post(f"{BASE}/{kind}", body, content_type=media_type)
    assert response.status_code == 200, (fmt, response.content[:500])
    receipt = response.json()
    quarantined = QuarantinedRecord.objects.filter(batch__public_id=receipt["batch_id"])
    assert {q.index: q.code for q in quarantined} == expected, (fmt, receipt["errors"])
    assert (receipt["accepted"], receipt["rejected"]) == (len(goods), len(poison))


def metric(writer, name: str) -> dict:
    response = writer.get(f"{BASE}/metrics", {"metric": name, "granularity": "day"})
    assert response.status_code == 200, response.content
    (point,) = [point for point in response.json()["points"] if point["n"]]
    return point


def requests_of(fmt: str, path: str) -> list[tuple[list, list]]:
    """The good and poison predictions of a format, as the requests that carry them. Read
    column-wise, each poison record comes in a body of its own, so that one which sends its
    body to the records path does not hide how the columns judge the others."""
    goods = [good(fmt, i) for i in range(GOOD_PER_FORMAT)]
    cases = [case for case in PREDICTION_POISON.values() if fmt in case[2]]
    poison = [
        (changed(good(fmt, 100 + n), changes), code) for n, (changes, code, _) in enumerate(cases)
    ]
    if path == "records":
        return [(goods, poison)]
    alone = [(goods[n : n + 1], [case]) for n, case in enumerate(poison)]
    return [*alone, (goods[len(poison) :], [])]


@pytest.mark.parametrize("path", ["columnar", "records"])
def test_poison_is_quarantined_in_every_format_and_the_jobs_count_only_the_good(
    model, writer, monkeypatch, path
):
    # given: bodies read column-wise where the database allows, or record by record
    judged = []
    validate = services.prediction_validate
    monkeypatch.setattr(services, "prediction_validate", lambda r: judged.append(1) or validate(r))
    if path == "records":
        monkeypatch.setattr(services, "columnar_readable", lambda records: False)
    # and good predictions with every kind of poison among them, in each format
    stored, sent = [], 0
    for fmt in "jncp":
        for goods, poison in requests_of(fmt, path):
            if goods or poison:
                post_and_check(writer, "predictions", fmt, goods, poison)
            stored += goods
            sent += len(goods) + len(poison)
    # and the columns vouched for good records they could read; else the records path judged
    # every record but those too deep to decode
    unreadable = sum(len(case[2]) for case in PREDICTION_POISON.values() if case[1] == "too_deep")
    if path == "columnar" and connection.vendor == "postgresql":
        assert len(judged) <= sent - unreadable - GOOD_PER_FORMAT
    else:
        assert len(judged) == sent - unreadable
    # and their outcomes, with poison outcomes among them
    truth = {record["prediction_id"]: int(i % 3 != 0) for i, record in enumerate(stored)}
    revenue = {pid: float(i) for i, pid in enumerate(truth)}
    outcomes = [
        {
            "prediction_id": pid,
            "observed_at": (NOW + timedelta(days=1)).isoformat(),
            "outcome": label,
            "values": {"revenue": revenue[pid]},
        }
        for pid, label in truth.items()
    ]
    bad_outcomes = [
        (changed(outcomes[0], changes), code) for changes, code in OUTCOME_POISON.values()
    ]
    for fmt, part in (("j", outcomes[::2]), ("n", outcomes[1::2])):
        post_and_check(writer, "outcomes", fmt, part, bad_outcomes)

    # when
    call_command("run_jobs")

    # then every metric is the one computed from the good records alone
    assert Prediction.objects.count() == len(stored)
    y_pred = np.array([record["prediction"] for record in stored])
    y_score = np.array([record["score"] for record in stored])
    y_true = np.array([truth[record["prediction_id"]] for record in stored])
    ages = [record["features"]["age"] for record in stored]
    expected = {
        "predictions": len(stored),
        "positive_rate": np.mean(y_pred == 1),
        "mean_score": np.mean(y_score),
        "label_coverage": 1.0,
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred),
        "recall": skm.recall_score(y_true, y_pred),
        "f1": skm.f1_score(y_true, y_pred),
        "roc_auc": skm.roc_auc_score(y_true, y_score),
        "log_loss": skm.log_loss(y_true, y_score),
        "brier": skm.brier_score_loss(y_true, y_score),
        "value_sum:revenue": sum(revenue.values()),
        "value:revenue": np.mean(list(revenue.values())),
        "missing_rate:age": sum(age is None for age in ages) / len(ages),
    }
    for name, value in expected.items():
        assert metric(writer, name)["value"] == pytest.approx(value, rel=1e-9), name


def test_a_leap_second_is_accepted_as_the_next_second(model, writer):
    record = good("j", 1) | {"timestamp": "2025-12-31T23:59:60Z"}
    response = writer.post(f"{BASE}/predictions", json_text([record]), content_type=JSON)
    assert response.json()["accepted"] == 1
    assert Prediction.objects.get().timestamp == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("media_type", "raw"),
    [
        (JSON, json_text(good("j", 1) | {"segment": "s" * 150_000})),
        (NDJSON, '{"prediction_id": "n-1", "segment": "' + "s" * 150_000 + '", oops}'),
    ],
)
def test_a_rejected_record_of_150_000_characters_is_kept_whole(model, writer, media_type, raw):
    body = f"[{raw}]" if media_type == JSON else raw + "\n"
    response = writer.post(f"{BASE}/predictions", body.encode(), content_type=media_type)
    assert response.json()["rejected"] == 1
    (kept,) = writer.get(f"{BASE}/quarantine").json()["results"]
    if media_type == JSON:
        assert json.loads(kept["raw"]) == json.loads(raw)
    else:
        assert kept["raw"] == raw


def test_a_record_nested_too_deep_is_shown_and_can_be_repaired_on_its_page(model, writer):
    record = good("j", 1) | {"features": {"age": deep(5_000)}}
    writer.post(f"{BASE}/predictions", json_text([record]), content_type=JSON)
    kept = QuarantinedRecord.objects.get()
    assert kept.code == "too_deep" and kept.raw == json_text(record)
    editor = Client()
    user = get_user_model().objects.create_user("editor")
    user_role_set(user=user, role=Role.EDITOR)
    editor.force_login(user)
    assert editor.get(f"/models/churn/quarantine/{kept.pk}/").status_code == 200
    again = editor.post(f"/models/churn/quarantine/{kept.pk}/resubmit", {"record": kept.raw})
    assert again.status_code in (200, 400) and "nests too deep" in again.content.decode()
    fixed = json_text(good("j", 1))
    editor.post(f"/models/churn/quarantine/{kept.pk}/resubmit", {"record": fixed})
    assert Prediction.objects.get().prediction_id == "j-g1"


def test_the_quarantine_downloads_carry_a_record_nested_too_deep(model, writer):
    record = good("j", 1) | {"features": {"age": deep(5_000)}}
    writer.post(f"{BASE}/predictions", json_text([record]), content_type=JSON)
    ndjson = writer.get(f"{BASE}/quarantine.ndjson")
    (line,) = b"".join(ndjson.streaming_content).decode().splitlines()
    assert ndjson.status_code == 200
    assert json.loads(line)["record"] is None  # too deep to parse back: its raw text is there
    assert json.loads(line)["raw"] == json_text(record)
    csv_download = writer.get(f"{BASE}/quarantine.csv")
    assert (
        csv_download.status_code == 200
        and "too_deep" in b"".join(csv_download.streaming_content).decode()
    )


def test_a_lone_surrogate_is_kept_as_its_escape_for_repair(model, writer):
    record = good("j", 1) | {"prediction_id": "x\ud800"}
    answer = writer.post(f"{BASE}/predictions", json_text([record]), content_type=JSON).json()
    assert answer["errors"][0]["prediction_id"] == "x\\ud800"
    (kept,) = writer.get(f"{BASE}/quarantine").json()["results"]
    assert json.loads(kept["raw"])["prediction_id"] == "x\ud800"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("[" * 100_000, "nests deeper than 32 levels"),
        (json_text([good("j", 1) | {"score": Raw("1" * 5_000)}]), "5,000 digits"),
    ],
)
def test_a_body_that_cannot_be_read_is_a_400_that_says_where(model, writer, body, fragment):
    response = writer.post(f"{BASE}/predictions", body.encode(), content_type=JSON)
    assert response.status_code == 400
    assert fragment in response.json()["detail"]
    assert not Prediction.objects.exists() and not QuarantinedRecord.objects.exists()


def test_a_record_over_the_size_limit_is_named_for_its_size(model, writer):
    body = json_text([good("j", 1), good("j", 2) | {"segment": "s" * 1_100_000}])
    response = writer.post(f"{BASE}/predictions", body.encode(), content_type=JSON)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "longer than 1,000,000 characters" in detail and "not valid JSON" not in detail


def test_parquet_times_past_year_9999_and_text_that_is_not_utf8_are_quarantined(model, writer):
    # given: a timestamp column as Arrow types it (past Python's year 9999) and ids as raw bytes
    moments = [NOW, datetime(9999, 12, 31, tzinfo=UTC), None, NOW]
    micros = [int(m.timestamp() * 1e6) if m else 3 * 10**17 for m in moments]  # 3e17: year 11476
    ids = [b"q-good", b"q-9999", b"q-11476", b"q-\xed\xa0\x80"]  # a surrogate, not UTF-8
    offsets = np.cumsum([0] + [len(i) for i in ids]).astype(np.int32)
    table = pa.table(
        {
            "prediction_id": pa.Array.from_buffers(
                pa.string(), 4, [None, pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(ids))]
            ),
            "timestamp": pa.array(micros, pa.timestamp("us", tz="UTC")),
            "model_version": pa.array(["1.0.0"] * 4),
            "prediction": pa.array([1] * 4),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    # when
    response = writer.post(f"{BASE}/predictions", buffer.getvalue(), content_type=PARQUET)
    # then
    assert response.status_code == 200
    codes = {error["index"]: error["code"] for error in response.json()["errors"]}
    assert codes == {1: "out_of_range", 2: "invalid", 3: "invalid_text"}
    assert Prediction.objects.get().timestamp == NOW


def test_the_floor_and_the_skew_are_settings(model, writer):
    records = [good("j", 1), good("j", 2) | {"timestamp": datetime.now(UTC).isoformat()}]
    floor = NOW + timedelta(minutes=2)  # good("j", 1) is a minute after NOW
    with override_settings(CANARY_TIMESTAMP_FLOOR=floor, CANARY_FUTURE_SKEW_S=-3600):
        answer = writer.post(f"{BASE}/predictions", json_text(records), content_type=JSON).json()
    assert [error["code"] for error in answer["errors"]] == ["out_of_range", "out_of_range"]
    assert floor.isoformat() in answer["errors"][0]["message"]


def test_a_floor_that_is_not_a_date_stops_the_start(monkeypatch):
    monkeypatch.setenv("CANARY_TIMESTAMP_FLOOR", "the year 2000")
    with pytest.raises(ImproperlyConfigured, match="CANARY_TIMESTAMP_FLOOR"):
        env_datetime("CANARY_TIMESTAMP_FLOOR", "2000-01-01")
    monkeypatch.setenv("CANARY_TIMESTAMP_FLOOR", "2010-06-01")
    assert env_datetime("CANARY_TIMESTAMP_FLOOR", "2000-01-01") == datetime(2010, 6, 1, tzinfo=UTC)
