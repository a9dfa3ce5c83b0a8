"""Outbound HTTP: one JSON POST to a peer we do not run (alert webhooks, retrain requests).

The helper makes the single call and says whether a failure is worth retrying; how often
and when to retry is the caller's policy, kept with the rows it records.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

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
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            answer.read(ANSWER_LIMIT_BYTES)
    except urllib.error.HTTPError as error:
        message = f"HTTP {error.code} from the webhook"
        raise OutboundError(
            message, permanent=status_is_permanent(error.code), status=error.code
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise OutboundError(f"{type(error).__name__}: {error}", permanent=False) from None
