"""Outbound HTTP: one JSON POST to a peer we do not run (alert webhooks, retrain requests).

The helper makes the single call and says whether a failure is worth retrying; how often
and when to retry is the caller's policy, kept with the rows it records.

A URL is one a user typed, so it must not reach the server's own network: https to public
addresses only, checked when the URL is saved (`outbound_url_check`) and again when it is
called, on the very address connected to (a name that resolves elsewhere later is caught).
`CANARY_OUTBOUND_ALLOW_PRIVATE` lifts both rules (a lab, the tests' local receivers).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings

ANSWER_LIMIT_BYTES = 64 * 1024  # the answer is read, not kept: enough for the peer to finish
TRANSIENT_4XX = (408, 429)  # a request timeout and a rate limit pass; other 4xx do not


class OutboundError(Exception):
    """The peer did not accept the request; `permanent` ones will not get better by retrying
    (a 404, a refused payload); transient ones might (a 503, a timeout, a refused connection)."""

    def __init__(self, message: str, *, permanent: bool, status: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.status = status


def status_is_permanent(status: int) -> bool:
    """A 4xx other than 408 and 429 is the request's fault, and a redirect urllib does not
    follow for a POST (307, 308) needs a new URL: neither changes by waiting."""
    return status < 500 and status not in TRANSIENT_4XX


class UnsafeUrl(ValueError):
    """An outbound URL that is not https to a public address; the message says why."""


def private_allowed() -> bool:
    return settings.CANARY_OUTBOUND_ALLOW_PRIVATE


def outbound_url_check(url: str) -> None:
    """Refuse (UnsafeUrl) a URL that is not https, or whose host is or resolves to a private,
    loopback, link-local or otherwise non-public address. A name that does not resolve now
    passes: DNS may be down, and the call checks again on the address it connects to."""
    parts = urllib.parse.urlsplit(url)
    if private_allowed():
        return
    if parts.scheme != "https":
        raise UnsafeUrl("Only https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    try:
        rows = socket.getaddrinfo(parts.hostname, parts.port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return
    addresses_check(parts.hostname, rows)


def addresses_check(host: str, rows: list[tuple]) -> None:
    """UnsafeUrl unless every address the host resolved to (getaddrinfo rows) is public."""
    for row in rows:
        address = row[4][0]
        if not address_is_public(address):
            raise UnsafeUrl(f"The host {host!r} resolves to {address}, which is not public.")


def address_is_public(text: str) -> bool:
    address = ipaddress.ip_address(text.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class BlockedAddress(OSError):
    """Raised inside a connection: the peer's address is not public (permanent)."""


def checked_connection(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None):
    """socket.create_connection to an address vetted here, never resolved again.

    A name that does not resolve raises socket.gaierror, as an unchecked call would (transient).
    """
    host, port = address
    rows = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    try:
        addresses_check(host, rows)
    except UnsafeUrl as error:
        raise BlockedAddress(str(error)) from None
    family, kind, proto, _, sockaddr = rows[0]
    sock = socket.socket(family, kind, proto)
    try:
        if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
            sock.settimeout(timeout)
        sock.connect(sockaddr)
    except OSError:
        sock.close()
        raise
    return sock


class CheckedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = checked_connection


class CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(CheckedHTTPSConnection, req, context=self._context)


class HttpsOnlyHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        raise urllib.error.URLError(BlockedAddress("Only https URLs are allowed."))


def opener() -> urllib.request.OpenerDirector:
    """Public https peers only (no proxy: a proxy would hide the address), unless allowed."""
    if private_allowed():
        return urllib.request.build_opener()
    handlers = [urllib.request.ProxyHandler({}), CheckedHTTPSHandler(), HttpsOnlyHandler()]
    return urllib.request.build_opener(*handlers)


def post_json(url: str, payload: dict, *, timeout_s: float, headers: dict[str, str]) -> None:
    """POST `payload` as JSON; returns once the peer answered 2xx, else raises OutboundError."""
    body = json.dumps(payload).encode()
    try:
        request = urllib.request.Request(
            url,
            data=body,
            headers={"Content-Type": "application/json", **headers},
            method="POST",
        )
    except ValueError as error:  # not a URL urllib can use: no retry will make it one
        raise OutboundError(f"{type(error).__name__}: {error}", permanent=True) from None
    try:
        with opener().open(request, timeout=timeout_s) as answer:
            answer.read(ANSWER_LIMIT_BYTES)
    except urllib.error.HTTPError as error:
        message = f"HTTP {error.code} from the webhook"
        raise OutboundError(
            message, permanent=status_is_permanent(error.code), status=error.code
        ) from None
    except urllib.error.URLError as error:
        blocked = isinstance(error.reason, BlockedAddress)
        raise OutboundError(f"{type(error).__name__}: {error}", permanent=blocked) from None
    except (OSError, http.client.HTTPException) as error:
        raise OutboundError(f"{type(error).__name__}: {error}", permanent=False) from None
