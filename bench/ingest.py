"""HTTP ingestion (JSON and CSV bodies) against raw COPY of the same rows, in the same run.

    DATABASE_URL=postgres://.../canary_bench .venv/bin/python bench/ingest.py [--rows 1000000]

Prints progress on stderr and one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import Gunicorn, django_setup, model_and_key, post, psycopg_url, tables_truncate

FEATURES = 10
START = datetime(2026, 3, 1, tzinfo=UTC)
# Labels too: they point at prediction rows without a database constraint.
TABLES = (
    "monitoring_prediction",
    "monitoring_predictionkey",
    "monitoring_label",
    "monitoring_ingestbatch",
    "monitoring_dirtyhour",
)


def records(first: int, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(first, first + count):
        features = {f"f{j}": round(rng.gauss(0, 1), 6) for j in range(FEATURES - 2)}
        features["plan"] = rng.choice(["basic", "plus", "premium"])
        features["tenure"] = rng.randint(0, 120)
        score = rng.random()
        out.append(
            {
                "prediction_id": f"pred-{i}",
                "timestamp": (START + timedelta(seconds=i)).isoformat(),
                "model_version": "1.0.0",
                "prediction": int(score > 0.5),
                "score": round(score, 6),
                "segment": rng.choice(["web", "app"]),
                "features": features,
            }
        )
    return out


def csv_body(batch: list[dict]) -> bytes:
    out = io.StringIO()
    names = list(batch[0]["features"])
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["prediction_id", "timestamp", "model_version", "prediction", "score", "segment", *names]
    )
    for r in batch:
        writer.writerow(
            [
                r["prediction_id"],
                r["timestamp"],
                r["model_version"],
                r["prediction"],
                r["score"],
                r["segment"],
                *(r["features"][n] for n in names),
            ]
        )
    return out.getvalue().encode()


def bodies_write(directory: Path, rows: int, batch: int) -> None:
    """JSON and CSV bodies of every batch, on disk, so that the client costs nothing to time."""
    for number, first in enumerate(range(0, rows, batch)):
        chunk = records(first, min(batch, rows - first), seed=first)
        (directory / f"{number}.json").write_bytes(json.dumps({"records": chunk}).encode())
        (directory / f"{number}.csv").write_bytes(csv_body(chunk))


def http_run(server: Gunicorn, key: str, directory: Path, suffix: str, clients: int) -> dict:
    files = sorted(directory.glob(f"*.{suffix}"), key=lambda p: int(p.stem))
    media_type = "text/csv" if suffix == "csv" else "application/json"
    accepted, lock, queue = [0], threading.Lock(), list(files)

    def client():
        while True:
            with lock:
                if not queue:
                    return
                path = queue.pop(0)
            receipt = post(
                server.port, "/api/v1/models/bench/predictions", path.read_bytes(), key, media_type
            )
            with lock:
                accepted[0] += receipt["accepted"]

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"rows": accepted[0], "seconds": time.perf_counter() - started}


def copy_run(url: str, model_id: int, version_id: int, rows: int, batch: int) -> dict:
    """The same rows, as a loader would send them, straight into the table with COPY."""
    import psycopg

    columns = (
        "model_id, version_id, prediction_id, timestamp, segment, prediction, "
        "prediction_num, score, features, content_md5"
    )
    tuples = [
        (
            model_id,
            version_id,
            r["prediction_id"],
            r["timestamp"],
            r["segment"],
            str(r["prediction"]),
            float(r["prediction"]),
            r["score"],
            json.dumps(r["features"], separators=(",", ":")),
            "",
        )
        for first in range(0, rows, batch)
        for r in records(first, min(batch, rows - first), seed=first)
    ]
    started = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        for first in range(0, rows, batch):
            with cursor.copy(f"COPY monitoring_prediction ({columns}) FROM STDIN") as copy:
                for row in tuples[first : first + batch]:
                    copy.write_row(row)
            conn.commit()
    return {"rows": len(tuples), "seconds": time.perf_counter() - started}


def warm_up(server: Gunicorn, key: str, workers: int) -> None:
    """A few small requests of each format first, so that imports and connections are made."""
    batch = records(10**9, 200, seed=1)
    for _ in range(2 * workers):
        for body, media_type in (
            (json.dumps(batch).encode(), "application/json"),
            (csv_body(batch), "text/csv"),
        ):
            post(server.port, "/api/v1/models/bench/predictions", body, key, media_type)


def big_body_run(server: Gunicorn, key: str, directory: Path, megabytes: int) -> float:
    """One CSV body of about `megabytes` MB; the web process's peak memory after it."""
    path = directory / "big.csv"
    limit, first = megabytes * 1024 * 1024, 10**9  # up to the upload limit, not over it
    with path.open("wb") as out:
        while True:
            body = csv_body(records(first, 2_000, seed=first))
            body = body if out.tell() == 0 else body.split(b"\n", 1)[1]
            if out.tell() + len(body) > limit:
                break
            out.write(body)
            first += 2_000
    post(server.port, "/api/v1/models/bench/predictions", path.read_bytes(), key, "text/csv")
    return server.peak_rss_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000, help="records per request")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--clients", type=int, default=2, help="concurrent senders")
    parser.add_argument("--big-body-mb", type=int, default=100, help="0 to skip")
    args = parser.parse_args()
    url = django_setup()
    from factory.services import versions_resolve

    model_id, key = model_and_key()
    version_id = versions_resolve(model=model_id_model(model_id), names={"1.0.0"})["1.0.0"]
    result = {"rows": args.rows, "batch": args.batch, "workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        log(f"writing {args.rows:,} rows of bodies")
        bodies_write(directory, args.rows, args.batch)
        server = Gunicorn(url, args.workers)
        try:
            warm_up(server, key, args.workers)
            for suffix in ("csv", "json"):
                tables_truncate(*TABLES)
                run = http_run(server, key, directory, suffix, args.clients)
                assert run["rows"] == args.rows, run
                result[f"http_{suffix}_rows_per_s"] = round(run["rows"] / run["seconds"])
                log(f"HTTP {suffix}: {result[f'http_{suffix}_rows_per_s']:,} rows/s")
            result["web_peak_rss_mb"] = round(server.peak_rss_mb(), 1)
            if args.big_body_mb:
                tables_truncate(*TABLES)
                result["big_body_mb"] = args.big_body_mb
                result["big_body_web_peak_rss_mb"] = round(
                    big_body_run(server, key, directory, args.big_body_mb), 1
                )
                log(f"{args.big_body_mb} MB body: peak {result['big_body_web_peak_rss_mb']} MB")
        finally:
            server.stop()
    tables_truncate(*TABLES)
    run = copy_run(psycopg_url(url), model_id, version_id, args.rows, args.batch)
    result["copy_rows_per_s"] = round(run["rows"] / run["seconds"])
    result["csv_to_copy_ratio"] = round(
        result["http_csv_rows_per_s"] / result["copy_rows_per_s"], 3
    )
    result["json_to_copy_ratio"] = round(
        result["http_json_rows_per_s"] / result["copy_rows_per_s"], 3
    )
    tables_truncate(*TABLES)
    print(json.dumps(result))


def model_id_model(model_id: int):
    from factory.models import MLModel

    return MLModel.objects.get(pk=model_id)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
