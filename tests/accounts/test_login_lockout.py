"""Login throttling: five wrong passwords lock a username out from that address."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import Client
from django.urls import resolve
from freezegun import freeze_time

from tests.conftest import NOW

pytestmark = pytest.mark.django_db

PASSWORD = "right-password-123"


@pytest.fixture(autouse=True)
def users():
    # Load the URLs (and the apps behind them) before any clock is frozen: imports under
    # freezegun are slow.
    resolve("/login/")
    cache.clear()
    for name in ("alice", "bob"):
        get_user_model().objects.create_user(name, password=PASSWORD)
    yield
    cache.clear()


def login(username: str, password: str, address: str = "203.0.113.5"):
    return Client(REMOTE_ADDR=address).post("/login/", {"username": username, "password": password})


def logged_in(response) -> bool:
    return response.status_code == 302 and "/login/" not in response["Location"]


def test_five_wrong_passwords_lock_the_right_one_out_with_a_message(settings, caplog):
    # given
    settings.CANARY_LOGIN_FAILURES = 5
    with freeze_time(NOW), caplog.at_level(logging.WARNING, logger="canary.login"):
        answers = [login("alice", f"wrong-{i}") for i in range(5)]
        # when
        right = login("alice", PASSWORD)
    # then
    assert [a.status_code for a in answers[:4]] == [200] * 4
    assert answers[4].status_code == 429
    assert right.status_code == 429
    assert "Too many failed logins" in right.content.decode()
    assert "15 minutes" in right.content.decode()
    assert "_auth_user_id" not in right.client.session
    assert any("login locked" in r.message and "alice" in r.message for r in caplog.records)


def test_a_lockout_leaves_other_users_and_addresses_alone(settings):
    with freeze_time(NOW):
        # given
        for i in range(5):
            login("alice", f"wrong-{i}", address="203.0.113.5")
        # when / then
        assert logged_in(login("bob", PASSWORD, address="203.0.113.5"))
        assert logged_in(login("alice", PASSWORD, address="198.51.100.7"))
        assert login("alice", PASSWORD, address="203.0.113.5").status_code == 429


def test_the_right_password_works_again_after_the_lockout(settings):
    # given
    settings.CANARY_LOGIN_LOCKOUT_MINUTES = 15
    with freeze_time(NOW):
        for i in range(5):
            login("alice", f"wrong-{i}")
    # when / then
    with freeze_time(NOW + timedelta(minutes=14)):
        assert login("alice", PASSWORD).status_code == 429
    with freeze_time(NOW + timedelta(minutes=15, seconds=1)):
        assert logged_in(login("alice", PASSWORD))


def test_a_successful_login_forgets_earlier_failures(settings):
    with freeze_time(NOW):
        # given
        for i in range(4):
            login("alice", f"wrong-{i}")
        assert logged_in(login("alice", PASSWORD))
        # when
        for i in range(4):
            login("alice", f"wrong-again-{i}")
        # then
        assert logged_in(login("alice", PASSWORD))


def test_behind_a_proxy_the_forwarded_address_counts(settings):
    # given: two clients behind the same proxy address
    settings.CANARY_BEHIND_PROXY = True
    with freeze_time(NOW):
        for i in range(5):
            Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.5").post(
                "/login/", {"username": "alice", "password": f"wrong-{i}"}
            )
        # when
        other = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7").post(
            "/login/", {"username": "alice", "password": PASSWORD}
        )
    # then
    assert logged_in(other)
