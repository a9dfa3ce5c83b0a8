"""Shared set-up for the benchmarks: Django against DATABASE_URL, a clean schema, gunicorn.

(Named harness, not common: bench/ comes first on the path, and would hide the app's common.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def django_setup() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL to a PostgreSQL database of the benchmark's own.")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    os.environ["CELERY_BROKER_URL"] = "memory://"  # no worker: jobs are not what is measured
    import django

    django.setup()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return url


def psycopg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def tables_truncate(*tables: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (Linux VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def model_and_key() -> tuple[int, str]:
    from accounts.services import api_key_create
    from factory.models import MLModel
    from factory.services import model_create

    MLModel.objects.filter(name="bench").delete()
    model = model_create(name="bench", task="binary_classification")
    key = api_key_create(name="bench", scopes=["predictions:write", "outcomes:write"])
    return model.pk, key


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """The web process under test, with no request rate limit and a raised records cap."""

    def __init__(self, url: str, workers: int):
        import socket
        import time

        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": "memory://",
            "CANARY_INGEST_RATE": "",
            "CANARY_MAX_RECORDS": "10000000",
            "LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--timeout",
                "600",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def workers(self) -> list[int]:
        pid = self.process.pid
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def peak_rss_mb(self) -> float:
        return max(peak_rss_mb(pid) for pid in self.workers())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def post(port: int, path: str, body: bytes, key: str, content_type: str) -> dict:
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(
        "POST",
        path,
        body=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {data[:500]!r}")
    return json.loads(data)


# --- a stored dataset, built once through the app's own paths and reused by later runs ---

DATASET_START = "2026-01-05T00:00:00+00:00"
DATASET_FEATURES = 10  # 8 numerical (one of them drifting), 1 categorical, 1 integer
DATASET_CHUNK = 200_000  # rows per ingestion call: a CSV body of about 40 MB
SEGMENTS = ("web", "app")


def dataset_name(rows: int, days: int) -> str:
    return f"bench-data-{rows}-{days}d"


def dataset_frames(first: int, size: int, rows: int, days: int, seed: int):
    """Predictions and outcomes (two of three predictions labelled) as DataFrames."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    start = pd.Timestamp(DATASET_START)
    # Rows are spread evenly over the days in id order, so chunks are contiguous in time.
    offsets = (np.arange(first, first + size) + rng.uniform(0, 1, size)) * (days * 86400 / rows)
    at = start + pd.to_timedelta(offsets, unit="s")
    share = offsets / (days * 86400)
    score = rng.uniform(0, 1, size).round(4)
    ids = np.char.add("d-", np.arange(first, first + size).astype(str))
    predictions = pd.DataFrame(
        {
            "prediction_id": ids,
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "model_version": np.where(
                share > 0.5, np.where(rng.uniform(size=size) < 0.2, "2.0", "1.0"), "1.0"
            ),
            "prediction": (score >= 0.5).astype(int),
            "score": score,
            "segment": rng.choice(SEGMENTS, size),
        }
    )
    for j in range(DATASET_FEATURES - 2):
        predictions[f"f{j}"] = rng.normal(0.5 * share if j == 0 else 0, 1, size).round(4)
    predictions["plan"] = rng.choice(["basic", "plus", "premium"], size, p=[0.5, 0.3, 0.2])
    predictions["tenure"] = rng.integers(0, 120, size)
    return predictions, outcomes_frame(rng, ids, at, score, first)


def outcomes_frame(rng, ids, at, score, first: int):
    """Outcomes of two predictions in three (by position from ``first``), 10 minutes to 3 days
    late, positive with the prediction's score as probability."""
    import numpy as np
    import pandas as pd

    size = len(ids)
    labelled = np.arange(first, first + size) % 3 != 0
    delay = pd.to_timedelta(rng.uniform(600, 3 * 86400, size), unit="s")
    outcomes = pd.DataFrame(
        {
            "prediction_id": ids,
            "observed_at": (at + delay).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "outcome": (rng.uniform(size=size) < score).astype(int),
        }
    )
    return outcomes[labelled]


def dataset_ingest(model, rows: int, days: int, log=print) -> None:
    """Store the rows through the ingestion service (CSV bodies: the columnar COPY path)."""
    for first in range(0, rows, DATASET_CHUNK):
        size = min(DATASET_CHUNK, rows - first)
        frames_ingest(model, *dataset_frames(first, size, rows, days, seed=first))
        log(f"ingested {first + size:,} of {rows:,} predictions")


def frames_ingest(model, predictions, outcomes) -> None:
    """Predictions as a CSV body (the columnar COPY path) and outcomes as records, through the
    ingestion service; every row must be accepted."""
    import io

    from monitoring.ingest.parsers import CsvPredictions
    from monitoring.ingest.services import records_ingest

    body = io.BytesIO(predictions.to_csv(index=False).encode())
    receipt = records_ingest(
        model=model,
        kind="predictions",
        records=CsvPredictions(body),
        content_type="text/csv",
        enqueue_jobs=False,
    )
    assert receipt.accepted == len(predictions), receipt.as_dict()
    records = outcomes.to_dict("records")
    receipt = records_ingest(model=model, kind="outcomes", records=records, enqueue_jobs=False)
    assert receipt.accepted == len(records), receipt.as_dict()


def raw_partitions_ensure(first, last) -> None:
    """Rows written into the raw tables by SQL need their months' partitions (PostgreSQL)."""
    from django.db import transaction

    from monitoring.ingest.partitions import months_between, partitions_ensure

    with transaction.atomic():
        partitions_ensure(months_between(first, last))


BULK_TABLES = (
    "monitoring_label",
    "monitoring_sketch",
    "monitoring_hourlyaggregate",
    "monitoring_hourlyvalue",
    "monitoring_dirtyhour",
    "monitoring_quarantinedrecord",
    "monitoring_prediction",
    "monitoring_predictionkey",
    "monitoring_outcome",
    "monitoring_ingestbatch",
)


def model_delete(name: str) -> None:
    """Delete a model and its millions of rows with one DELETE per table (the ORM's cascade
    would load every row's key first)."""
    from django.db import connection

    from factory.models import MLModel

    model = MLModel.objects.filter(name=name).first()
    if model is None:
        return
    with connection.cursor() as cursor:
        for table in BULK_TABLES:
            cursor.execute(f"DELETE FROM {table} WHERE model_id = %s", [model.pk])
    model.delete()


# The completeness marker names the aggregates' version: bump it when the job stores new
# aggregates (2: explain's per-slice sums; 3: stored a day per row; 4: the slices' score bins;
# 5: the slices' business values and multiclass confusion counts), so an older dataset is
# aggregated again, not reused.
AGGREGATES_VERSION = 5
AGGREGATED_BEFORE = "complete: ingested, joined and aggregated"
AGGREGATED = f"{AGGREGATED_BEFORE} (aggregates v{AGGREGATES_VERSION})"


def hours_mark_dirty(model_id: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO monitoring_dirtyhour (model_id, hour)
            SELECT DISTINCT model_id, date_trunc('hour', timestamp) FROM monitoring_prediction
            WHERE model_id = %s ON CONFLICT DO NOTHING""",
            [model_id],
        )


def dataset_ensure(rows: int, days: int = 30, *, jobs: bool = True, log=print):
    """The benchmark model with `rows` predictions, built unless a complete one is stored.

    Complete means every row ingested and, with `jobs`, the join and the aggregation run by
    the app's own job; the model's description records that, so an interrupted build is
    rebuilt rather than reused.
    """
    import time

    from factory.models import MLModel
    from factory.services import model_create
    from monitoring.jobs import jobs_run

    name = dataset_name(rows, days)
    aggregated, ingested = AGGREGATED, "complete: ingested"
    done = aggregated if jobs else ingested
    model = MLModel.objects.filter(name=name).first()
    if model is not None and model.description in {done, aggregated}:
        return model, {"reused": True}
    figures = {"reused": False}
    if model is not None and model.description.startswith(AGGREGATED_BEFORE):
        # Aggregated by an older job, without the aggregates added since: aggregated again.
        hours_mark_dirty(model.pk)
        MLModel.objects.filter(pk=model.pk).update(description=ingested)
        model.description = ingested
    if model is None or model.description != ingested:
        model_delete(name)
        model = model_create(name=name, task="binary_classification", positive_class=1)
        started = time.perf_counter()
        dataset_ingest(model, rows, days, log)
        figures["ingest_s"] = round(time.perf_counter() - started, 1)
        MLModel.objects.filter(pk=model.pk).update(description=ingested)
    if jobs:
        started = time.perf_counter()
        jobs_run(model_id=model.pk)
        figures["jobs_s"] = round(time.perf_counter() - started, 1)
        MLModel.objects.filter(pk=model.pk).update(description=done)
    model.refresh_from_db()
    return model, figures
