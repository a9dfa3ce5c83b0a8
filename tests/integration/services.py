"""Real processes for the fault tests: gunicorn, Celery workers, a private PostgreSQL."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.db import connection

from tests.conftest import free_port, need_service

ROOT = Path(__file__).resolve().parents[2]


def database_url(settings_dict: dict | None = None) -> str:
    db = settings_dict or connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def wait_for(condition, timeout_s: float = 60, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return False


def port_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class WebServer:
    """gunicorn serving config.wsgi, in its own process group."""

    def __init__(self, database: str, workers: int = 2, env: dict | None = None):
        self.port = free_port()
        environment = {
            **os.environ,
            "DATABASE_URL": database,
            "CANARY_INGEST_RATE": "",
            "DATABASE_CONN_MAX_AGE": "0",
            **(env or {}),
        }
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
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
                "300",
                "--graceful-timeout",
                "5",
            ],
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not wait_for(lambda: port_answers(self.port), 60):
            self.stop()
            raise RuntimeError("gunicorn did not start:\n" + self.output())

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-5000:]

    def stop(self) -> None:
        stop(self.process)


def post(port: int, path: str, body: bytes, key: str, content_type: str = "application/json"):
    """One POST; (status, parsed body). Connection failures raise OSError or HTTPException."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": content_type},
        )
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(data)
    except ValueError:
        return response.status, {"raw": data[:500].decode(errors="replace")}


def post_until_ok(
    port: int, path: str, body: bytes, key: str, timeout_s: float = 180, failures=None
) -> dict:
    """What a well-behaved client does: retry the same body on errors, with backoff.

    Each failed attempt is appended to `failures` (a list), when given."""
    deadline, delay = time.monotonic() + timeout_s, 0.2
    while True:
        try:
            status, answer = post(port, path, body, key)
            if status == 200:
                return answer
            if status < 500 and status != 429:
                raise AssertionError(f"{status}: {answer}")
            if failures is not None:
                failures.append(status)
        except (OSError, http.client.HTTPException) as error:
            if failures is not None:
                failures.append(repr(error))
        if time.monotonic() > deadline:
            raise AssertionError(f"no 200 from {path} within {timeout_s} s")
        time.sleep(delay)
        delay = min(delay * 2, 2)


def celery_worker(database: str, broker: str, *extra: str, env: dict | None = None):
    environment = {
        **os.environ,
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": broker,
        **(env or {}),
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            *extra,
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def postgres_bindir() -> Path | None:
    """The server binaries (initdb, pg_ctl): PG_BINDIR, else pg_config's answer."""
    candidates = [os.environ.get("PG_BINDIR", "")]
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(out.stdout.strip())
    for candidate in filter(None, candidates):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    return None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on its own port, which a test may stop and start.

    With `standby_of`, a hot standby of that cluster: its base backup taken with
    `pg_basebackup -R`, so it streams the primary's WAL as soon as it starts. `settings` are
    server settings (`-c name=value`) for every start.
    """

    def __init__(self, settings: tuple[str, ...] = (), standby_of: PrivatePostgres | None = None):
        bindir = postgres_bindir()
        need_service("PostgreSQL server binaries (initdb, pg_ctl)", bindir is not None)
        self.bindir = bindir
        self.port = free_port()
        self.settings = settings
        self.dir = Path(tempfile.mkdtemp(prefix="canary-pg-"))
        self.data = self.dir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        if standby_of is None:
            self.run(
                "initdb",
                *("-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"),
                "--no-sync",  # a throwaway cluster: no wait for its files to reach the disk
            )
        else:
            self.run(
                "pg_basebackup",
                *("-h", "127.0.0.1", "-p", str(standby_of.port), "-U", "postgres"),
                *("-D", str(self.data), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
            )
        self.start()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/canary"
        if standby_of is None:
            self.sql("postgres", "CREATE DATABASE canary")

    def run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / tool), *args], check=True, capture_output=True
        )

    def start(self) -> None:
        options = " ".join(
            [f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"]
            + [f"-c {setting}" for setting in self.settings]
        )
        self.run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop_immediately(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def sql(self, database: str, statement: str, params=None) -> list[tuple]:
        """Run one statement; its rows (none for a statement that returns none)."""
        import psycopg

        url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            check=True,
            env={**os.environ, "DATABASE_URL": self.url},
            capture_output=True,
        )

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop_immediately()
        shutil.rmtree(self.dir, ignore_errors=True)
