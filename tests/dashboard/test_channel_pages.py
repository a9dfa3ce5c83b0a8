"""The model's Channels tab: admins set up Slack and PagerDuty; others see where alerts go."""

from __future__ import annotations

import pytest

from accounts.roles import Role
from monitoring.models import WebhookEndpoint

pytestmark = pytest.mark.django_db
KEY = "R0UT1NGKEY0123456789abcdefab9f3c"


def test_an_admin_sets_up_slack_and_pagerduty(model, login, outbound_private):
    admin = login(Role.ADMIN)
    add = "/models/churn/channels/add"
    slack = {"kind": "slack", "url": "http://127.0.0.1:9/slack"}
    assert admin.post(add, slack).status_code == 302
    pagerduty = {"kind": "pagerduty", "url": "http://127.0.0.1:9/enqueue", "routing_key": KEY}
    answer = admin.post(add, pagerduty, follow=True)
    assert "PagerDuty channel added." in answer.content.decode()
    kinds = set(WebhookEndpoint.objects.values_list("kind", "routing_key"))
    assert kinds == {("slack", ""), ("pagerduty", KEY)}
    # the page lists both; the key is shown by its last characters only
    page = admin.get("/models/churn/channels/").content.decode()
    assert "Slack" in page and "PagerDuty" in page and "…9f3c" in page and KEY not in page


def test_a_pagerduty_channel_without_its_key_is_refused_with_the_reason(model, login):
    admin = login(Role.ADMIN)
    body = {"kind": "pagerduty", "url": "https://events.example.com/v2/enqueue"}
    page = admin.post("/models/churn/channels/add", body, follow=True).content.decode()
    assert "a PagerDuty channel needs its integration key" in page
    assert 'value="https://events.example.com/v2/enqueue"' in page  # what was typed is kept
    assert not WebhookEndpoint.objects.exists()


def test_a_private_address_is_refused(model, login):
    admin = login(Role.ADMIN)
    body = {"kind": "slack", "url": "https://127.0.0.1/hook"}
    page = admin.post("/models/churn/channels/add", body, follow=True).content.decode()
    assert "not public" in page and not WebhookEndpoint.objects.exists()


def test_viewers_and_editors_see_the_channels_but_cannot_change_them(model, viewer, editor):
    channel = WebhookEndpoint.objects.create(model=model, kind="slack", url="https://x.example/h")
    page = viewer.get("/models/churn/channels/").content.decode()
    assert "https://x.example/h" in page and "Add a channel" not in page
    body = {"kind": "slack", "url": "https://y.example/h"}
    assert editor.post("/models/churn/channels/add", body).status_code == 403
    assert editor.post(f"/models/churn/channels/{channel.pk}/remove").status_code == 403


def test_an_admin_removes_a_channel(model, login):
    channel = WebhookEndpoint.objects.create(model=model, kind="slack", url="https://x.example/h")
    admin = login(Role.ADMIN)
    assert admin.post(f"/models/churn/channels/{channel.pk}/remove").status_code == 302
    assert not WebhookEndpoint.objects.exists()
