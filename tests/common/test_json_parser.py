"""Every DRF JSON endpoint bounds nesting: a body nested too deep is a 400 that says so."""

from __future__ import annotations

import io
import json

import pytest
from rest_framework.exceptions import ParseError

from common.json_parser import MAX_BODY_DEPTH, BoundedJSONParser

ENDPOINTS = [
    ("post", "/api/v1/models"),
    ("patch", "/api/v1/models/churn"),
    ("post", "/api/v1/models/churn/alert-rules"),
    ("post", "/api/v1/models/churn/webhooks"),
    ("post", "/api/v1/models/churn/versions"),
    ("put", "/api/v1/models/churn/gates"),
    ("post", "/api/v1/models/churn/rollouts"),
    ("put", "/api/v1/models/churn/retrain-settings"),
]
DEEP_BODIES = {
    "100,000 brackets": "[" * 100_000,
    "5,000 levels in a field": '{"description": ' + "[" * 5_000 + "]" * 5_000 + "}",
}


def parse(text: str):
    return BoundedJSONParser().parse(io.BytesIO(text.encode()), "application/json", {})


@pytest.mark.django_db
@pytest.mark.parametrize("body", list(DEEP_BODIES))
@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_a_body_nested_too_deep_is_a_400_problem(model, writer, method, url, body):
    response = getattr(writer, method)(url, DEEP_BODIES[body], content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    assert f"deeper than {MAX_BODY_DEPTH} levels" in response.json()["detail"]


def test_the_limit_itself_parses_and_one_level_more_does_not():
    assert parse("[" * MAX_BODY_DEPTH + "]" * MAX_BODY_DEPTH) is not None
    with pytest.raises(ParseError, match="at character 64"):
        parse("[" * (MAX_BODY_DEPTH + 1) + "]" * (MAX_BODY_DEPTH + 1))


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"note": "[{" * 1_000, "quoted": '\\"[[[' * 100})
    assert parse(text) == json.loads(text)
