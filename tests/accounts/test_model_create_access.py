"""Who may create a model: a key without a model limit, or an admin's dashboard session."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from accounts.roles import Role, user_role_set
from factory.models import MLModel

pytestmark = pytest.mark.django_db

NEW_MODEL = {"name": "fraud", "task": "binary_classification", "positive_class": 1}


def session_client(role: Role) -> APIClient:
    user = get_user_model().objects.create_user(f"u-{role.label}", password="pw-12345678")
    user_role_set(user=user, role=role)
    client = APIClient()
    client.force_login(user)
    return client


def test_a_key_limited_to_one_model_may_not_create_a_model(model, client_with):
    # given
    client = client_with("factory:write", "read", models=("churn",))
    # when
    response = client.post("/api/v1/models", NEW_MODEL, format="json")
    # then
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert "limited" in response.json()["detail"]
    assert not MLModel.objects.filter(name="fraud").exists()


def test_a_key_without_model_limit_creates_a_model(model, client_with):
    response = client_with("factory:write").post("/api/v1/models", NEW_MODEL, format="json")
    assert response.status_code == 201
    assert MLModel.objects.filter(name="fraud").exists()


def test_an_admin_session_creates_a_model_and_an_editor_session_may_not(model):
    # given
    editor, admin = session_client(Role.EDITOR), session_client(Role.ADMIN)
    # when
    refused = editor.post("/api/v1/models", NEW_MODEL, format="json")
    created = admin.post("/api/v1/models", NEW_MODEL, format="json")
    # then
    assert refused.status_code == 403
    assert "admin" in refused.json()["detail"]
    assert created.status_code == 201


def test_a_session_write_needs_the_csrf_token(model):
    # given: a browser-like client that enforces CSRF, logged in as an admin
    user = get_user_model().objects.create_superuser("root", password="pw-12345678")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    # when
    response = client.post("/api/v1/models", NEW_MODEL, format="json")
    # then
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_a_session_may_not_ingest_even_as_admin(model):
    admin = session_client(Role.ADMIN)
    response = admin.post("/api/v1/models/churn/predictions", [], format="json")
    assert response.status_code == 403
    assert "API key" in response.json()["detail"]
