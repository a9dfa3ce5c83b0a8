"""The replica's router, the middleware that picks where a request reads, the marks a write
leaves, the lag's arithmetic and banner, and the settings. The pair itself (a primary and a
streaming standby under gunicorn): tests/integration/test_replica.py.

Where a "replica" database is needed, a second connection to the tests' own database stands in
for it: what is under test here is where requests read, not replication.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.test import RequestFactory

from config.replica import (
    PRIMARY,
    REPLICA,
    WRITE_COOKIE,
    ReplicaLag,
    ReplicaReadsMiddleware,
    ReplicaRouter,
    reading_alias,
    reads_from,
    replica_lag_from,
    wal_position,
)
from tests.config.test_deploy import manage
from tests.conftest import free_port, need_service

router = ReplicaRouter()
KEY_HEADER = {"HTTP_AUTHORIZATION": "Bearer cnry_some-key"}


@pytest.fixture
def postgres():
    need_service("PostgreSQL (DATABASE_URL)", connection.vendor == "postgresql")


def replica_alias(django_db_blocker, **changes):
    """The 'replica' database for one test: the tests' database on a connection of its own.

    Outside Django's test transactions (which allow no database they were not set up with);
    the tests that use it write nothing there.
    """
    connections.settings[REPLICA] = {**connections.settings[PRIMARY], **changes}
    try:
        with django_db_blocker.unblock():
            yield
    finally:
        connections[REPLICA].close()
        del connections[REPLICA]
        del connections.settings[REPLICA]


@pytest.fixture
def stand_in_replica(django_db_setup, django_db_blocker, postgres):
    yield from replica_alias(django_db_blocker)


@pytest.fixture
def unreachable_replica(django_db_setup, django_db_blocker, postgres):
    yield from replica_alias(django_db_blocker, HOST="127.0.0.1", PORT=str(free_port()))


def as_user(request):
    request.user = User(username="alice")  # as AuthenticationMiddleware or DRF would set it
    return request


def served(request) -> tuple[str, HttpResponse]:
    """Where the middleware sent the request's reads, and its response."""
    seen = {}

    def view(request):
        seen["alias"] = reading_alias()
        return HttpResponse("ok")

    response = ReplicaReadsMiddleware(view)(request)
    return seen["alias"], response


def test_writes_and_migrations_go_to_the_primary_wherever_the_request_reads():
    with reads_from(REPLICA):
        assert router.db_for_write(User) == PRIMARY
    assert router.allow_migrate(PRIMARY, "auth") is True
    assert router.allow_migrate(REPLICA, "auth") is False


def test_reads_go_where_the_request_reads_and_to_the_primary_outside_a_request():
    # a Celery job, a command or a shell never sets where it reads: the primary
    assert router.db_for_read(User) == PRIMARY
    with reads_from(REPLICA):
        assert router.db_for_read(User) == REPLICA
    assert router.db_for_read(User) == PRIMARY


@pytest.mark.django_db(transaction=True)
def test_a_read_inside_a_transaction_on_the_primary_reads_the_primary():
    with reads_from(REPLICA):
        with transaction.atomic():
            assert router.db_for_read(User) == PRIMARY
        assert router.db_for_read(User) == REPLICA


def test_an_object_read_from_the_replica_may_be_related_to_one_of_the_primary():
    assert router.allow_relation(User(), User()) is True


def test_a_get_reads_from_the_replica_and_a_post_from_the_primary(stand_in_replica):
    requests = RequestFactory()
    assert served(requests.get("/"))[0] == REPLICA
    assert served(requests.head("/"))[0] == REPLICA
    assert served(requests.post("/"))[0] == PRIMARY
    assert served(requests.delete("/"))[0] == PRIMARY


def test_a_write_leaves_the_primarys_wal_position_in_a_signed_cookie(stand_in_replica):
    # given
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn()::text")
        before = wal_position(cursor.fetchone()[0])
    # when
    _, response = served(as_user(RequestFactory().post("/")))
    # then
    request = RequestFactory().get("/")
    request.COOKIES[WRITE_COOKIE] = response.cookies[WRITE_COOKIE].value
    position = int(request.get_signed_cookie(WRITE_COOKIE, salt="canary.replica.wrote"))
    assert position >= before
    assert response.cookies[WRITE_COOKIE]["httponly"]
    # and: until the replica has replayed it (this stand-in is no standby: it never does), the
    # user reads from the primary
    assert served(request)[0] == PRIMARY


def test_an_anonymous_post_leaves_no_mark(stand_in_replica):
    requests = RequestFactory()
    _, response = served(requests.post("/api/v1/models", HTTP_AUTHORIZATION="Bearer cnry_x"))
    assert WRITE_COOKIE not in response.cookies
    assert served(requests.get("/api/v1/models", HTTP_AUTHORIZATION="Bearer cnry_x"))[0] == REPLICA


def test_a_forged_write_cookie_is_ignored(stand_in_replica):
    request = RequestFactory().get("/")
    request.COOKIES[WRITE_COOKIE] = "99999999999"
    assert served(request)[0] == REPLICA


def test_an_api_key_that_wrote_reads_from_the_primary_and_other_keys_do_not(stand_in_replica):
    requests = RequestFactory()
    served(as_user(requests.post("/api/v1/models", **KEY_HEADER)))
    assert served(requests.get("/api/v1/models", **KEY_HEADER))[0] == PRIMARY
    other = {"HTTP_AUTHORIZATION": "Bearer cnry_another-key"}
    assert served(requests.get("/api/v1/models", **other))[0] == REPLICA


def test_a_replica_that_cannot_be_reached_sends_reads_to_the_primary(unreachable_replica, caplog):
    with caplog.at_level(logging.WARNING, logger="config.replica"):
        alias, response = served(RequestFactory().get("/"))
    assert (alias, response.status_code) == (PRIMARY, 200)
    assert "reading from the primary" in caplog.text


def test_wal_positions_order_like_postgresql_lsns():
    assert wal_position("16/B374D848") == 0x16_B374D848
    assert wal_position("0/FFFFFFFF") < wal_position("1/0") < wal_position("1/10")


def test_the_lag_counts_only_what_is_left_to_replay_or_the_time_without_a_primary():
    replayed_at = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    now = replayed_at + timedelta(minutes=5)
    # an idle primary: the last transaction was long ago, but nothing is left to replay
    assert replica_lag_from(replayed_at, now, True, True).seconds == 0
    assert replica_lag_from(replayed_at, now, False, True).seconds == 300
    lost = replica_lag_from(replayed_at, now, True, False)
    assert (lost.seconds, lost.receiving, lost.as_of) == (300, False, replayed_at)
    # clocks a little apart never make a negative lag
    assert replica_lag_from(now, replayed_at, False, True).seconds == 0


def test_the_lag_reads_to_the_second_under_an_hour():
    as_of = datetime(2026, 3, 10, tzinfo=UTC)
    shown = [ReplicaLag(s, True, as_of).behind for s in (59.4, 61, 3599, 7500, 90000)]
    assert shown == ["59 s", "1 min 1 s", "59 min 59 s", "2 h 5 min", "1 d 1 h"]


def test_the_banner_says_how_far_behind_the_replica_is_or_that_it_lost_its_primary():
    as_of = datetime(2026, 3, 10, 11, 55, 55, tzinfo=UTC)
    behind = render_to_string("base.html", {"replica_lag": ReplicaLag(245, True, as_of)})
    lost = render_to_string("base.html", {"replica_lag": ReplicaLag(245, False, as_of)})
    assert "Read from a replica 4 min 5 s behind the primary" in behind
    assert f"stored up to {as_of:%Y-%m-%d %H:%M:%S} UTC, not what came since" in behind
    assert "lost its connection to the primary" in lost
    assert f"stored up to {as_of:%Y-%m-%d %H:%M:%S} UTC (4 min 5 s ago)" in lost
    assert "replica-lag" not in render_to_string("base.html", {})


SHOW_DATABASES = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'databases': s.DATABASES, 'routers': s.DATABASE_ROUTERS, 'middleware': s.MIDDLEWARE, "
    "'sessions': s.SESSION_ENGINE}, default=str))"
)
PRIMARY_URL = "postgres://canary@db.internal:5432/canary"


def shown_databases(**env: str) -> dict:
    result = manage("shell", "--no-imports", "-c", SHOW_DATABASES, SECRET_KEY="k" * 50, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_replica_url_adds_the_replica_its_router_middleware_and_sessions():
    shown = shown_databases(
        DATABASE_URL=PRIMARY_URL, DATABASE_REPLICA_URL="postgres://canary@replica.internal/canary"
    )
    replica = shown["databases"]["replica"]
    assert (replica["HOST"], replica["TEST"]["MIRROR"]) == ("replica.internal", "default")
    assert replica["OPTIONS"]["connect_timeout"] == 5 and replica["CONN_HEALTH_CHECKS"]
    assert shown["routers"] == ["config.replica.ReplicaRouter"]
    middleware = shown["middleware"]
    assert (
        middleware.index("config.replica.ReplicaReadsMiddleware")
        < middleware.index("config.middleware.StatementTimeoutMiddleware")
        < middleware.index("django.contrib.sessions.middleware.SessionMiddleware")
    )
    assert shown["sessions"] == "config.sessions"


def test_without_a_replica_url_there_is_one_database_and_no_router():
    shown = shown_databases(DATABASE_URL=PRIMARY_URL)
    assert list(shown["databases"]) == ["default"] and shown["routers"] == []
    assert "config.replica.ReplicaReadsMiddleware" not in shown["middleware"]


def test_a_replica_beside_sqlite_stops_the_start():
    result = manage("check", DATABASE_REPLICA_URL="postgres://canary@replica.internal/canary")
    assert result.returncode != 0
    assert "DATABASE_REPLICA_URL needs PostgreSQL" in result.stderr
