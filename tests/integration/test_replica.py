"""Reads off a streaming replica, against a real pair: a private primary and a hot standby
made from it with pg_basebackup, and gunicorn with DATABASE_URL on the one and
DATABASE_REPLICA_URL on the other.

The standby's replay is paused to tell where an answer came from: a model created on the
primary while replay is paused is unknown to whoever reads the standby, and known to whoever
reads the primary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
from django.conf import settings

from config.replica import WRITE_COOKIE
from tests.conftest import need_service, prediction
from tests.integration.services import ROOT, PrivatePostgres, WebServer, wait_for
from tests.integration.test_worker import redis_answers

pytestmark = pytest.mark.services
PASSWORD = "replica-test-password"
LAG_WARN_S = 2  # the pages' banner threshold, short enough for a test to cross


class Pair:
    """A primary, its standby, the web server on both, and who uses it."""

    def __init__(self):
        # fsync off: a server stopped here (never a machine) loses nothing, and it migrates faster.
        self.primary = PrivatePostgres(
            settings=("wal_level=replica", "max_wal_senders=4", "fsync=off")
        )
        self.standby: PrivatePostgres | None = None
        self.web: WebServer | None = None

    def start(self, cache: str) -> None:
        # The standby's base backup is taken while the primary migrates: the schema streams.
        with ThreadPoolExecutor(1) as pool:
            standby = pool.submit(PrivatePostgres, settings=("fsync=off",), standby_of=self.primary)
            try:
                self.primary.migrate()
                keys = self.manage("shell", "--no-imports", "-c", SETUP)
                self.writer, self.reader = json.loads(keys)
            finally:
                self.standby = standby.result()  # destroyed with the primary, whatever failed
        self.web = WebServer(
            self.primary.url,
            workers=2,
            env={
                "DATABASE_REPLICA_URL": self.standby.url,
                "CELERY_BROKER_URL": "memory://",  # no worker is under test here
                "REDIS_URL": cache,
                "CANARY_REPLICA_LAG_WARN_S": str(LAG_WARN_S),
            },
        )
        self.base = f"http://127.0.0.1:{self.web.port}"
        post = self.api(self.writer).post
        answer = post(
            f"{self.base}/api/v1/models/churn/predictions",
            data=json.dumps([prediction(i) for i in range(20)]),
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 200, answer.text
        self.manage("run_jobs")  # aggregates for the pages' charts and drift, on the primary
        self.caught_up()

    def manage(self, *args: str) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": self.primary.url},
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def api(self, key: str) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        return session

    def browser(self, username: str) -> requests.Session:
        """A logged-in browser: its cookies, and the CSRF header its forms would send."""
        session = requests.Session()
        session.get(f"{self.base}/login/").raise_for_status()
        answer = session.post(
            f"{self.base}/login/",
            data={
                "username": username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
        )
        assert answer.status_code == 200 and answer.url.rstrip("/") == self.base, answer.url
        session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
        return session

    def on_primary(self, model_name: str) -> bool:
        rows = self.primary.sql(
            "canary", "SELECT 1 FROM factory_model WHERE name = %s", [model_name]
        )
        return bool(rows)

    def caught_up(self) -> None:
        """Wait until the standby has replayed all the primary wrote so far."""
        (target,) = self.primary.sql("canary", "SELECT pg_current_wal_insert_lsn()")[0]
        assert wait_for(
            lambda: self.standby.sql(
                "canary", "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
            )[0][0],
            30,
        )

    @contextmanager
    def replay_paused(self):
        self.standby.sql("canary", "SELECT pg_wal_replay_pause()")
        try:
            yield
        finally:
            self.standby.sql("canary", "SELECT pg_wal_replay_resume()")

    def destroy(self) -> None:
        if self.web:
            self.web.stop()
        for database in (self.standby, self.primary):
            if database:
                database.destroy()


# A model, two dashboard users, and two API keys printed as JSON: the writer's and the reader's.
SETUP = (
    "import json; "
    "from django.contrib.auth.models import User; "
    "from accounts.services import api_key_create; "
    "from factory.services import model_create; "
    "model_create(name='churn', task='binary_classification', positive_class=1); "
    f"User.objects.create_superuser('alice', password={PASSWORD!r}); "
    f"User.objects.create_superuser('bob', password={PASSWORD!r}); "
    "print(json.dumps([api_key_create(name='writer', "
    "scopes=['factory:write', 'predictions:write', 'read']), "
    "api_key_create(name='reader', scopes=['read'])]))"
)


@pytest.fixture(scope="module")
def pair():
    cache = settings.CELERY_BROKER_URL
    need_service("Redis (CELERY_BROKER_URL)", cache.startswith("redis") and redis_answers(cache))
    pair = Pair()
    try:
        pair.start(cache)
        yield pair
    finally:
        pair.destroy()


PAGES = (
    "/",
    "/alerts/",
    "/models/churn/",
    "/models/churn/business/",
    "/models/churn/rows/",
    "/models/churn/quarantine/",
    "/models/churn/versions/",
    "/models/churn/versions/1.0.0/",
    "/models/churn/compare/",
    "/models/churn/audit/",
    "/models/churn/features/age/",
)


def model_body(name: str) -> str:
    return json.dumps({"name": name, "task": "binary_classification", "positive_class": 1})


def test_pages_and_get_answers_come_from_the_standby_and_writes_go_to_the_primary(pair):
    # given: a reader, and the standby's replay paused
    reader = pair.api(pair.reader)
    bob = pair.browser("bob")
    with pair.replay_paused():
        # when: the writer creates a model
        created = pair.api(pair.writer).post(
            f"{pair.base}/api/v1/models",
            data=model_body("fraud"),
            headers={"Content-Type": "application/json"},
        )
        # then: it is on the primary, and whoever reads the standby does not see it yet
        assert created.status_code == 201, created.text
        assert pair.on_primary("fraud")
        assert reader.get(f"{pair.base}/api/v1/models/fraud").status_code == 404
        assert bob.get(f"{pair.base}/models/fraud/").status_code == 404
        overview = bob.get(f"{pair.base}/")
        assert overview.status_code == 200 and "churn" in overview.text
        assert "fraud" not in overview.text
    # and: once the standby replays, they do
    assert wait_for(lambda: reader.get(f"{pair.base}/api/v1/models/fraud").status_code == 200)
    assert bob.get(f"{pair.base}/models/fraud/").status_code == 200


def test_a_user_reads_their_own_write_at_once_while_others_wait_for_the_standby(pair):
    alice, bob = pair.browser("alice"), pair.browser("bob")
    writer, reader = pair.api(pair.writer), pair.api(pair.reader)
    with pair.replay_paused():
        # when: a logged-in user and an API key each create a model
        by_alice = alice.post(
            f"{pair.base}/api/v1/models",
            data=model_body("loans"),
            headers={"Content-Type": "application/json"},
        )
        by_key = writer.post(
            f"{pair.base}/api/v1/models",
            data=model_body("spam"),
            headers={"Content-Type": "application/json"},
        )
        assert (by_alice.status_code, by_key.status_code) == (201, 201), by_alice.text
        # then: each reads their own write at once, from the primary
        assert alice.get(f"{pair.base}/models/loans/").status_code == 200
        assert writer.get(f"{pair.base}/api/v1/models/spam").status_code == 200
        # and: the others read the standby, which has neither yet
        assert bob.get(f"{pair.base}/models/loans/").status_code == 404
        assert reader.get(f"{pair.base}/api/v1/models/spam").status_code == 404


def test_a_session_the_standby_has_not_got_yet_is_read_from_the_primary(pair):
    with pair.replay_paused():
        # given: a login while the standby lags, and a browser that kept only its session
        carol = pair.browser("bob")
        carol.cookies.pop(WRITE_COOKIE)
        # when
        page = carol.get(f"{pair.base}/")
        # then: still logged in
        assert page.status_code == 200 and page.url.rstrip("/") == pair.base, page.url
        assert "Log out" in page.text


def test_a_page_read_from_a_lagging_standby_says_how_far_behind_it_is(pair):
    bob = pair.browser("bob")
    pair.caught_up()
    assert wait_for(lambda: "replica-lag" not in bob.get(f"{pair.base}/").text, 15)
    with pair.replay_paused():
        pair.api(pair.writer).post(
            f"{pair.base}/api/v1/models",
            data=model_body("lagging"),
            headers={"Content-Type": "application/json"},
        ).raise_for_status()
        # then: past the threshold, the page says so
        assert wait_for(lambda: "behind the primary" in bob.get(f"{pair.base}/").text, 30)
    # and: once it has caught up, the banner goes
    assert wait_for(lambda: "replica-lag" not in bob.get(f"{pair.base}/").text, 30)


def test_pages_and_get_answers_still_come_while_the_primary_is_stopped(pair):
    # given: users who logged in and wrote before the primary stops
    alice, bob = pair.browser("alice"), pair.browser("bob")
    writer, reader = pair.api(pair.writer), pair.api(pair.reader)
    assert writer.get(f"{pair.base}/api/v1/models").status_code == 200
    pair.caught_up()
    pair.primary.stop()
    try:
        # then: pages and GET answers come from the standby
        for user in (alice, bob):
            for path in PAGES:
                answer = user.get(f"{pair.base}{path}")
                assert answer.status_code == 200, (path, answer.text[-2000:])
        for key in (writer, reader):
            for path in (
                "/api/v1/models",
                "/api/v1/models/churn",
                "/api/v1/models/churn/alert-rules",
                "/api/v1/models/churn/quarantine",
                "/api/v1/alerts",
            ):
                answer = key.get(f"{pair.base}{path}")
                assert answer.status_code == 200, (path, answer.text[-2000:])
        # and: the pages say the standby lost its primary
        assert wait_for(
            lambda: "lost its connection to the primary" in bob.get(f"{pair.base}/").text, 30
        )
        # and: a write fails, and says so
        refused = writer.post(
            f"{pair.base}/api/v1/models",
            data=model_body("offline"),
            headers={"Content-Type": "application/json"},
        )
        assert refused.status_code >= 500
    finally:
        pair.primary.start()
