"""Shared set-up for the benchmarks: Django against DATABASE_URL, a clean schema, gunicorn."""

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
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["CELERY_BROKER_URL"] = "memory://"  # no worker: jobs are not what is measured
    import django

    django.setup()
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True,
        capture_output=True,
    )  # fmt: skip
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
            **os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": "memory://",
            "CANARY_INGEST_RATE": "", "CANARY_MAX_RECORDS": "10000000", "LOG_LEVEL": "WARNING",
        }  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{self.port}",
             "--workers", str(workers), "--timeout", "600"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
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
        "POST", path, body=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
    )  # fmt: skip
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{response.status}: {data[:500]!r}")
    return json.loads(data)
