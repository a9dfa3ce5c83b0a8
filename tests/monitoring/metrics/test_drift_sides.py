"""A drift answer with a side that holds no predictions is a 400 naming that side and the
versions looked at, never a 200 of null statistics (API.md, drift)."""

from __future__ import annotations

import pytest

from tests.monitoring.metrics.test_compare_traffic import confounded_rows, ingest, iso

pytestmark = pytest.mark.django_db


@pytest.fixture
def switched(model):
    """1.0.0 serves 1-16 May, 1.1.0 15-28 May."""
    ingest(model, confounded_rows())
    return model


def drift(client, **query) -> tuple[int, dict]:
    response = client.get("/api/v1/models/churn/drift", query)
    return response.status_code, response.json()


def test_a_reference_window_the_version_did_not_serve_is_a_400_naming_it(switched, writer):
    status, body = drift(
        writer, version="1.1.0", reference_start=iso(0), reference_end=iso(7), start=iso(20)
    )
    assert status == 400
    assert body["detail"] == (
        f"the reference window {iso(0)} to {iso(7)} holds no predictions "
        "(versions looked at: 1.1.0)"
    )


def test_a_current_window_the_version_did_not_serve_is_a_400_naming_it(switched, writer):
    status, body = drift(writer, version="1.0.0", start=iso(20), end=iso(27))
    assert status == 400
    assert "the current window" in body["detail"] and "1.0.0" in body["detail"]
    status, body = drift(writer, version="1.0.0", segment="tablet")
    assert status == 400
    assert "in segment 'tablet' holds no predictions" in body["detail"]


def test_sides_with_predictions_answer_as_before(switched, writer):
    status, body = drift(writer, version="1.0.0", reference_start=iso(0), reference_end=iso(7))
    assert status == 200
    assert body["reference"]["n"] > 0 and body["current"]["n"] > 0
