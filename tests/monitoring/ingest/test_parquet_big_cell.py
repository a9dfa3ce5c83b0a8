"""A tiny Parquet body with one huge, highly compressible cell: refused from the metadata,
before it is decompressed, so the worker's memory stays bounded; the other rows are stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from monitoring.models import Prediction, QuarantinedRecord

URL = "/api/v1/models/churn/predictions"
PARQUET = "application/vnd.apache.parquet"
BIG_CELL_BYTES = 150_000_000
MAX_GROWTH_BYTES = 100 * 1024 * 1024

# Run in a child process, so that this process never holds the 150 MB cell and the child's
# peak memory (ru_maxrss, in KiB on Linux) is its own.
WRITE_BODY = textwrap.dedent(
    """
    import sys
    import pyarrow as pa, pyarrow.parquet as pq

    at = "2026-03-10T12:00:00+00:00"
    rows = [("p-1", "basic"), ("p-2", "pro"), ("p-3", "a" * int(sys.argv[2])), ("p-4", "pro")]
    table = pa.table({
        "prediction_id": [row[0] for row in rows],
        "timestamp": [at] * len(rows),
        "model_version": ["1.0.0"] * len(rows),
        "prediction": [1] * len(rows),
        "plan": [row[1] for row in rows],
    })
    pq.write_table(table, sys.argv[1], compression="zstd", row_group_size=2)
    """
)
PARSE_BODY = textwrap.dedent(
    """
    import json, resource, sys
    import django

    django.setup()
    from monitoring.ingest.parsers import Unreadable, parse_stream

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(sys.argv[1], "rb") as body:
        records = list(parse_stream(body, "application/vnd.apache.parquet", "predictions"))
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    refused = [record.code for record in records if isinstance(record, Unreadable)]
    print(json.dumps({"growth": growth, "records": len(records), "refused": refused}))
    """
)


@pytest.fixture(scope="module")
def big_cell_body(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("parquet") / "big-cell.parquet"
    subprocess.run([sys.executable, "-c", WRITE_BODY, path, str(BIG_CELL_BYTES)], check=True)
    return path


def test_the_big_cell_is_refused_before_it_takes_the_memory(big_cell_body):
    assert big_cell_body.stat().st_size < 100_000
    env = {"DJANGO_SETTINGS_MODULE": "config.test_settings"}
    child = subprocess.run(
        [sys.executable, "-c", PARSE_BODY, big_cell_body],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    result = json.loads(child.stdout.splitlines()[-1])
    assert result["records"] == 4
    assert result["refused"] == ["too_long", "too_long"]
    assert result["growth"] < MAX_GROWTH_BYTES


@pytest.mark.django_db
def test_the_rows_of_other_row_groups_are_stored(model, writer, big_cell_body):
    response = writer.post(URL, big_cell_body.read_bytes(), content_type=PARQUET)
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert set(Prediction.objects.values_list("prediction_id", flat=True)) == {"p-1", "p-2"}
    assert Prediction.objects.get(prediction_id="p-2").features == {"plan": "pro"}
    quarantined = QuarantinedRecord.objects.filter(model=model)
    assert quarantined.count() == 2
    assert all(record.code == "too_long" for record in quarantined)
    assert all("row group 1 decompresses" in record.message for record in quarantined)
