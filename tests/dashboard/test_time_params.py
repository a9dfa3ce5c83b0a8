"""One parser for a time in a query: the API and the pages refuse the same text the same way."""

from __future__ import annotations

import html
import re

import pytest

from common.time import time_parse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "start 'soon' is not an RFC 3339 timestamp"),
        ("2026-03-01T00:00:00", "start '2026-03-01T00:00:00' has no UTC offset (add Z or +00:00)"),
    ],
)
def test_a_bad_time_parameter_says_why_on_the_api_and_the_pages(
    text, message, model, writer, viewer
):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        time_parse(text, "start")
    api = writer.get("/api/v1/models/churn/metrics", {"metric": "accuracy", "start": text})
    assert api.status_code == 400 and api.json()["detail"] == message
    page = viewer.get("/models/churn/rows/", {"start": text})
    assert page.status_code == 400 and message in html.unescape(page.content.decode())


def test_a_time_with_its_offset_is_read_as_that_instant():
    moment = time_parse("2026-03-01T12:00:00+02:00", "start")
    assert moment.isoformat() == "2026-03-01T10:00:00+00:00"  # read in UTC
    assert time_parse("2026-03-01T10:00:00Z", "end") == moment
