from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.roles import Role, user_role_set

PASSWORD = "a-long-password"


@pytest.fixture
def login(db):
    """A logged-in test client for a new user with the given role."""

    def make(role: Role) -> Client:
        user = get_user_model().objects.create_user(role.label, password=PASSWORD)
        user_role_set(user=user, role=role)
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def viewer(login):
    return login(Role.VIEWER)


@pytest.fixture
def editor(login):
    return login(Role.EDITOR)


@pytest.fixture(autouse=True)
def empty_cache():
    """Page sections are cached; each test starts without them."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
