"""The outbound HTTP helper against a real local server: what it sends, and which failures
are worth a retry."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from common.http import OutboundError, post_json


class Peer:
    """http.server in a thread: answers `status` after `delay_s`, keeps what it received."""

    def __init__(self):
        self.status, self.delay_s = 200, 0.0
        self.received: list[tuple[dict, dict]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                peer.received.append((dict(self.headers), body))
                time.sleep(peer.delay_s)
                try:
                    self.send_response(peer.status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except BrokenPipeError:  # the caller gave up waiting: the timeout test
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def peer(outbound_private):
    peer = Peer()
    yield peer
    peer.server.shutdown()
    peer.server.server_close()


def post(url: str, timeout_s: float = 5) -> None:
    post_json(url, {"alert": 1}, timeout_s=timeout_s, headers={"User-Agent": "Canary"})


def test_a_2xx_answer_is_a_delivery_of_the_json_with_its_headers(peer):
    peer.status = 204
    post(peer.url)
    ((headers, body),) = peer.received
    assert body == {"alert": 1}
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "Canary"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_a_4xx_is_permanent(peer, status):
    peer.status = status
    with pytest.raises(OutboundError) as raised:
        post(peer.url)
    assert raised.value.permanent and raised.value.status == status
    assert str(raised.value) == f"HTTP {status} from the webhook"


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_a_5xx_a_request_timeout_and_a_rate_limit_are_transient(peer, status):
    peer.status = status
    with pytest.raises(OutboundError) as raised:
        post(peer.url)
    assert not raised.value.permanent and raised.value.status == status


def test_a_peer_slower_than_the_timeout_is_transient(peer):
    peer.delay_s = 1.0
    started = time.monotonic()
    with pytest.raises(OutboundError) as raised:
        post(peer.url, timeout_s=0.2)
    assert not raised.value.permanent and time.monotonic() - started < 0.9
    assert "timed out" in str(raised.value)


def test_a_refused_connection_is_transient(outbound_private):
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(OutboundError) as raised:
        post(f"http://127.0.0.1:{port}/hook")
    assert not raised.value.permanent and "Connection refused" in str(raised.value)


def test_an_address_that_is_no_url_is_permanent():
    with pytest.raises(OutboundError) as raised:
        post("hooks.example.com/alert")
    assert raised.value.permanent
