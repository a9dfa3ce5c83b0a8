"""Query parameters that used to answer 500 or an empty download answer a 400 that says why."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, transaction

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from tests.conftest import NOW, outcome, prediction

pytestmark = pytest.mark.django_db
METRICS = "/api/v1/models/churn/metrics?metric=accuracy"


@pytest.fixture
def traffic(model):
    records = [prediction(i, at=NOW + timedelta(hours=i)) for i in range(48)]
    records_ingest(model=model, kind="predictions", records=records, enqueue_jobs=False)
    labels = [outcome(i, outcome=i % 2) for i in range(48)]
    records_ingest(model=model, kind="outcomes", records=labels, enqueue_jobs=False)
    jobs_run(model_id=model.pk)
    return model


def problem(response, status: int = 400) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    return response.json()["detail"]


def test_a_nul_byte_in_a_text_parameter_is_a_400(traffic, writer):
    assert "NUL" in problem(writer.get("/api/v1/alerts?model=a%00b"))
    assert "NUL" in problem(writer.get(f"{METRICS}&segment=web%00"))


@pytest.mark.parametrize(
    "bound",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00%2B01:00",
        "9999-12-31T23:59:59-05:00",
        "1969-12-31T23:59:59Z",
    ],
)
def test_a_bound_far_from_any_data_is_a_400_naming_the_years(traffic, writer, bound):
    assert "1970 to 2999" in problem(writer.get(f"{METRICS}&start={bound}"))


@pytest.mark.parametrize("bound", ["2026-03-10T12:00Z", "2026-03-10T12:00:00%2B0530", "1741608000"])
def test_a_bound_that_is_not_rfc_3339_is_a_400(traffic, writer, bound):
    assert "RFC 3339" in problem(writer.get(f"{METRICS}&start={bound}"))


def test_a_large_offset_is_read_in_utc(traffic, writer):
    # given: 2026-03-11T08:00+20:00 is 2026-03-10T12:00Z, the first prediction's hour
    url = f"{METRICS}&granularity=hour&start=2026-03-11T08:00:00%2B20:00&end=2026-03-10T14:00:00Z"
    # when
    response = writer.get(url)
    # then
    assert response.status_code == 200
    points = response.json()["points"]
    assert [p["start"] for p in points] == ["2026-03-10T12:00:00Z", "2026-03-10T13:00:00Z"]
    assert [p["n"] for p in points] == [1, 1]


def test_a_series_longer_than_the_points_cap_is_a_quick_400(traffic, writer):
    # given: every hour since 1970, the reproduction that used to run for two minutes
    began = time.monotonic()
    # when
    detail = problem(writer.get(f"{METRICS}&granularity=hour&start=1970-01-01T00:00:00Z"))
    # then
    assert "CANARY_MAX_POINTS (5000)" in detail
    assert time.monotonic() - began < 5


def test_the_points_cap_is_a_setting(traffic, writer, settings):
    settings.CANARY_MAX_POINTS = 24
    assert writer.get(f"{METRICS}&granularity=hour").status_code == 400
    settings.CANARY_MAX_POINTS = 48
    assert len(writer.get(f"{METRICS}&granularity=hour").json()["points"]) == 48


@pytest.mark.parametrize("alpha", ["nan", "inf", "-inf", "1e309"])
def test_a_number_that_is_not_finite_is_a_400(traffic, writer, alpha):
    url = f"/api/v1/models/churn/sensitivity?metric=accuracy&alpha={alpha}"
    assert "finite" in problem(writer.get(url))


def test_the_quarantine_download_refuses_a_bad_bound_before_it_streams(traffic, writer):
    url = "/api/v1/models/churn/quarantine.csv?start=9999-12-31T23:59:59-05:00"
    assert "1970 to 2999" in problem(writer.get(url))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="statement_timeout is PostgreSQL's")
def test_web_requests_have_a_statement_timeout_and_jobs_none(traffic, writer, settings):
    # given: a connection as a worker or a management command opens it
    settings.CANARY_STATEMENT_TIMEOUT_S = 1
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"
    # when
    assert writer.get("/api/v1/models").status_code == 200
    # then: the web request's connection stops a statement after a second
    began = time.monotonic()
    with (
        pytest.raises(OperationalError, match="statement timeout"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT pg_sleep(5)")
    assert time.monotonic() - began < 3
