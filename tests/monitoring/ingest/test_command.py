"""`manage.py ingest`: files through the same service, in batches, with progress and a receipt."""

from __future__ import annotations

import io
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command

from monitoring.models import IngestBatch, Outcome, Prediction, QuarantinedRecord
from tests.conftest import NOW

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[dict, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("ingest", *args, stdout=out, stderr=err)
    return json.loads(out.getvalue()), err.getvalue()


def test_a_csv_file_is_ingested_in_batches_with_progress_and_one_receipt(model, tmp_path):
    lines = ["prediction_id,timestamp,model_version,prediction,score,age"]
    lines += [f"p-{i},{NOW.isoformat()},1.0.0,1,0.5,{i}" for i in range(25)]
    lines[8] = "p-7,not a time,1.0.0,1,0.5,7"  # record index 7
    lines[20] = "p-19,2026-03-10T12:00:00Z,1.0.0,1,2.5,19"  # record index 19
    path = tmp_path / "predictions.csv"
    path.write_text("\n".join(lines) + "\n")

    receipt, progress = run("predictions", str(path), "--model", "churn", "--batch-size", "10")

    assert (receipt["received"], receipt["accepted"], receipt["rejected"]) == (25, 23, 2)
    assert [error["index"] for error in receipt["errors"]] == [7, 19]
    assert len(receipt["batch_ids"]) == 3 and IngestBatch.objects.filter(source="cli").count() == 3
    assert Prediction.objects.count() == 23
    assert Prediction.objects.get(prediction_id="p-3").features == {"age": 3}
    assert sorted(QuarantinedRecord.objects.values_list("index", flat=True)) == [7, 19]
    last = progress.strip().splitlines()[-1]
    assert "25 rows" in last and "rows/s" in last and "2 rejected" in last


def test_ndjson_from_stdin(model, monkeypatch):
    records = [
        {"prediction_id": f"p-{i}", "observed_at": NOW.isoformat(), "outcome": 1} for i in range(5)
    ]
    body = "\n".join(json.dumps(r) for r in records).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
    receipt, _ = run("outcomes", "-", "--model", "churn", "--format", "ndjson")
    assert receipt["accepted"] == 5 and Outcome.objects.count() == 5


def test_parquet_file_and_a_second_run_is_all_duplicates(model, tmp_path):
    path = tmp_path / "outcomes.parquet"
    pq.write_table(
        pa.table(
            {
                "prediction_id": ["a", "b"],
                "observed_at": [NOW.isoformat()] * 2,
                "outcome": [1, 0],
                "revenue": [3.5, 0.0],
            }
        ),
        path,
    )
    assert run("outcomes", str(path), "--model", "churn")[0]["accepted"] == 2
    again, _ = run("outcomes", str(path), "--model", "churn")
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    assert Outcome.objects.get(prediction_id="a").values == {"revenue": 3.5}


def test_unknown_model_missing_file_and_unreadable_file_are_command_errors(model, tmp_path):
    with pytest.raises(CommandError, match="Unknown model"):
        run("predictions", "x.csv", "--model", "nope")
    with pytest.raises(CommandError, match="Cannot open"):
        run("predictions", str(tmp_path / "missing.csv"), "--model", "churn")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"prediction_id": "a"')
    with pytest.raises(CommandError, match="cannot be read"):
        run("predictions", str(broken), "--model", "churn")
