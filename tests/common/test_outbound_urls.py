"""Outbound URLs a user sets must not reach the server's own network: https to public
addresses only, at save and again at send time on the address actually connected to."""

from __future__ import annotations

import socket

import pytest

from common.http import OutboundError, address_is_public, post_json
from monitoring.models import WebhookEndpoint
from tests.common.test_http import Peer

pytestmark = pytest.mark.django_db
PUBLIC = "93.184.215.14"


def resolving_to(address: str):
    """A getaddrinfo that answers `address` for every name (a DNS we control)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def getaddrinfo(host, port, *args, **kwargs):
        return [(family, socket.SOCK_STREAM, 6, "", (address, port or 443))]

    return getaddrinfo


@pytest.fixture
def peer():
    peer = Peer()
    yield peer
    peer.server.shutdown()
    peer.server.server_close()


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("::1", False),
        ("fd00::1", False),
        ("fe80::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
    ],
)
def test_which_addresses_are_public(address, public):
    assert address_is_public(address) is public


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://hooks.example.com/x", "https"),
        ("https://127.0.0.1/hook", "not public"),
        ("https://169.254.169.254/latest/meta-data/", "not public"),
        ("https://[::1]:8443/hook", "not public"),
        ("https://localhost/hook", "not public"),
        ("https://10.0.0.5/hook", "not public"),
    ],
)
def test_a_webhook_to_the_servers_own_network_is_refused_at_save(model, writer, url, says):
    response = writer.post("/api/v1/models/churn/webhooks", {"url": url}, format="json")
    assert response.status_code == 400
    assert says in response.json()["detail"]
    assert not WebhookEndpoint.objects.exists()


def test_a_retrain_hook_to_a_private_address_is_refused_at_save(model, writer):
    response = writer.put(
        "/api/v1/models/churn/retrain-settings",
        {"retrain_webhook_url": "https://192.168.1.20/retrain"},
        format="json",
    )
    assert response.status_code == 400 and "not public" in response.json()["detail"]
    model.refresh_from_db()
    assert model.retrain_webhook_url == ""
    emptied = writer.put(
        "/api/v1/models/churn/retrain-settings", {"retrain_webhook_url": ""}, format="json"
    )
    assert emptied.status_code == 200


def test_the_setting_lets_a_lab_use_private_addresses(model, writer, settings):
    settings.CANARY_OUTBOUND_ALLOW_PRIVATE = True
    url = "http://127.0.0.1:9/hook"
    response = writer.post("/api/v1/models/churn/webhooks", {"url": url}, format="json")
    assert response.status_code == 201


def test_a_name_that_resolves_elsewhere_at_send_time_is_not_called(
    model, writer, peer, monkeypatch
):
    # given: the name resolved to a public address when the webhook was saved
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to(PUBLIC))
    url = f"https://hooks.example.com:{peer.server.server_port}/hook"
    assert (
        writer.post("/api/v1/models/churn/webhooks", {"url": url}, format="json").status_code == 201
    )
    # when: by send time it resolves to this machine
    monkeypatch.setattr(socket, "getaddrinfo", resolving_to("127.0.0.1"))
    with pytest.raises(OutboundError) as raised:
        post_json(url, {"alert": 1}, timeout_s=2, headers={})
    # then: nothing reached the local peer, and retrying will not help
    assert raised.value.permanent and "not public" in str(raised.value)
    assert peer.received == []


def test_plain_http_is_not_called_even_to_a_listening_peer(peer):
    with pytest.raises(OutboundError) as raised:
        post_json(peer.url, {"alert": 1}, timeout_s=2, headers={})
    assert raised.value.permanent and "https" in str(raised.value)
    assert peer.received == []


def test_an_unresolvable_name_stays_a_transient_failure(monkeypatch):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(OutboundError) as raised:
        post_json("https://hooks.example.com/x", {"alert": 1}, timeout_s=2, headers={})
    assert not raised.value.permanent
