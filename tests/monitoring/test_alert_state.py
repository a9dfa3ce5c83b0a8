"""State questions the models answer: is a rule silenced, where does a message stand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.alerts.notify import MAX_ATTEMPTS
from monitoring.models import Alert, AlertRule, Notification
from tests.conftest import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def rule(model):
    return AlertRule.objects.create(model=model, metric="accuracy", kind="static", lower=0.8)


@pytest.fixture
def notification(rule):
    alert = Alert.objects.create(
        rule=rule,
        model=rule.model,
        state="firing",
        direction="too_low",
        window_start=NOW - timedelta(days=1),
        window_end=NOW,
        started_at=NOW,
    )
    return Notification.objects.create(alert=alert, kind="firing", recipients=["a@example.com"])


def test_a_rule_is_silenced_until_its_end_and_not_after(rule):
    assert not rule.is_silenced(NOW)
    rule.silenced_until = NOW + timedelta(hours=1)
    assert rule.is_silenced(NOW) and rule.is_silenced(NOW + timedelta(minutes=59))
    assert not rule.is_silenced(NOW + timedelta(hours=1))  # the end itself is free again
    assert not rule.is_silenced(NOW + timedelta(days=1))


def test_a_new_message_is_due_and_held_while_its_rule_is_silenced(notification):
    assert notification.delivery_state(NOW) == "due"
    notification.alert.rule.silenced_until = NOW + timedelta(hours=1)
    assert notification.delivery_state(NOW) == "held"
    assert notification.delivery_state(NOW + timedelta(hours=2)) == "due"


def test_a_failed_message_retries_until_its_attempts_run_out(notification):
    notification.error, notification.attempts = "SMTP 451 try later", 1
    assert notification.delivery_state(NOW) == "retrying"
    notification.attempts = MAX_ATTEMPTS - 1
    assert notification.delivery_state(NOW) == "retrying"
    notification.attempts = MAX_ATTEMPTS
    assert notification.delivery_state(NOW) == "failed"


def test_a_sent_message_is_sent_whatever_came_before(notification):
    notification.error, notification.attempts = "SMTP 451 try later", 2
    notification.alert.rule.silenced_until = NOW + timedelta(hours=1)
    notification.sent_at = NOW
    assert notification.delivery_state(NOW) == "sent"
