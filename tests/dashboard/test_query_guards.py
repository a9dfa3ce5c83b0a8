"""The pages and their downloads refuse a bad filter with a 400 before anything streams."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db
ROWS = "/models/churn/rows.csv?start=2026-03-01T00:00:00Z&feature=age"


@pytest.mark.parametrize("bound", ["nan", "inf", "-inf", "1e309"])
def test_a_rows_download_with_a_number_that_is_not_finite_is_a_400(model, viewer, bound):
    # when
    response = viewer.get(f"{ROWS}&min={bound}")
    # then: a page that says why, not a CSV of its header alone
    assert response.status_code == 400
    assert not response.streaming
    assert "finite" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("start=0001-01-01T00:00:00Z", "1970 to 2999"),
        ("end=9999-12-31T23:59:59-05:00", "1970 to 2999"),
        ("version=1.0%00", "NUL"),
    ],
)
def test_a_rows_download_with_a_bad_bound_or_text_is_a_400(model, viewer, query, says):
    response = viewer.get(f"/models/churn/rows.csv?{query}")
    assert response.status_code == 400
    assert says in response.content.decode()


def test_a_page_with_a_nul_in_its_query_is_a_400(model, viewer):
    response = viewer.get("/models/churn/?segment=web%00")
    assert response.status_code == 400
    assert "NUL" in response.content.decode()
