from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create
from tests.conftest import prediction

pytestmark = pytest.mark.django_db


def test_create_api_key_prints_the_key_alone_and_stores_only_its_hash(model):
    # given / when
    out = StringIO()
    call_command(
        "create_api_key", "crm", "--scope", "outcomes:write", "--model", "churn", stdout=out
    )
    # then
    raw_key = out.getvalue().strip()
    assert "\n" not in raw_key and raw_key.startswith("cnry_")
    stored = ApiKey.objects.get(name="crm")
    assert stored.key_sha256 == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key not in str(ApiKey.objects.values())
    assert stored.scopes == ["outcomes:write"]
    assert [m.name for m in stored.limited_to.all()] == ["churn"]


def test_create_api_key_refuses_an_unknown_model(db):
    with pytest.raises(Exception, match="Unknown model"):
        call_command("create_api_key", "x", "--scope", "read", "--model", "nope")


def test_no_key_is_401_problem_json(model):
    response = APIClient().get("/api/v1/models")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_wrong_key_is_401(model):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer cnry_not-a-key")
    response = client.get("/api/v1/models")
    assert response.status_code == 401
    assert "unknown" in response.json()["detail"]


def test_key_without_the_scope_is_403(model, client_with):
    client = client_with("read")
    response = client.post("/api/v1/models/churn/predictions", [prediction(1)], format="json")
    assert response.status_code == 403
    assert "predictions:write" in response.json()["detail"]


def test_key_limited_to_another_model_is_403(model, client_with):
    from factory.services import model_create

    model_create(name="fraud", task="binary_classification")
    client = client_with("predictions:write", "read", models=("fraud",))
    response = client.post("/api/v1/models/churn/predictions", [prediction(1)], format="json")
    assert response.status_code == 403
    assert client.get("/api/v1/models/fraud").status_code == 200
    assert [m["name"] for m in client.get("/api/v1/models").json()] == ["fraud"]


def test_dashboard_user_may_read_but_not_write(model):
    user = get_user_model().objects.create_user("ds", password="pw-12345678")
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/v1/models").status_code == 200
    response = client.post("/api/v1/models/churn/predictions", [prediction(1)], format="json")
    assert response.status_code == 403


def test_a_keys_last_use_is_stored_to_the_minute(model):
    # given: a key first used now
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='poll', scopes=['read'])}")
    assert client.get("/api/v1/models").status_code == 200
    first = ApiKey.objects.get(name="poll").last_used_at
    assert first is not None
    # when: used again within the minute, then after it
    assert client.get("/api/v1/models").status_code == 200
    again = ApiKey.objects.get(name="poll").last_used_at
    ApiKey.objects.filter(name="poll").update(last_used_at=first - timedelta(minutes=2))
    assert client.get("/api/v1/models").status_code == 200
    # then: the second use wrote nothing; the third did
    assert again == first
    assert ApiKey.objects.get(name="poll").last_used_at > first
