"""HTTP calls to Canary (standard library only), batched and retried where that is safe.

Only transient answers are retried: 5xx, 429 (waiting what Retry-After says) and network errors,
with exponential backoff. Other 4xx answers are the caller's mistake and raise at once.
Ingestion is idempotent on the server (by prediction id), so retrying a batch never double-counts.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from email.utils import parsedate_to_datetime
from itertools import islice


class CanaryError(Exception):
    """An answer that is not a success; `status` and `problem` (the problem+json body) say why."""

    def __init__(self, status: int, problem: dict | None, message: str):
        super().__init__(message)
        self.status = status
        self.problem = problem or {}


def batches(records: Iterable[dict], size: int) -> Iterator[list[dict]]:
    iterator = iter(records)
    while batch := list(islice(iterator, size)):
        yield batch


def retry_after_s(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


class CanaryClient:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 30,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 60,
        batch_size: int = 5000,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.batch_size = batch_size
        self.sleep = sleep

    # -- the API -------------------------------------------------------------------------------

    def register_version(
        self, model: str, version: str, lineage: dict, reference: dict | None = None
    ) -> dict:
        """Register a version (201), or confirm the same body (200); another body raises 409."""
        body = {"version": version, "lineage": lineage}
        if reference is not None:
            body["reference"] = reference
        return self.request("POST", f"/api/v1/models/{model}/versions", body)

    def log_predictions(self, model: str, records: Iterable[dict]) -> dict:
        return self._log(f"/api/v1/models/{model}/predictions", records)

    def log_outcomes(self, model: str, records: Iterable[dict]) -> dict:
        return self._log(f"/api/v1/models/{model}/outcomes", records)

    def rollout(self, model: str, version: str, traffic_percent: float, **fields) -> dict:
        body = {"version": version, "traffic_percent": traffic_percent, **fields}
        return self.request("POST", f"/api/v1/models/{model}/rollouts", body)

    def set_gates(self, model: str, *, canary: dict | None = None, production: dict | None = None):
        """Replace the promotion gates: minimum held-out metrics per stage."""
        body = {"canary": canary or {}, "production": production or {}}
        return self.request("PUT", f"/api/v1/models/{model}/gates", body)

    def rollback(self, model: str, note: str = "") -> dict:
        return self.request("POST", f"/api/v1/models/{model}/rollouts/rollback", {"note": note})

    def routing(self, model: str, segment: str = "", prediction_id: str | None = None) -> dict:
        query = {"segment": segment}
        if prediction_id is not None:
            query["prediction_id"] = prediction_id
        return self.request("GET", f"/api/v1/models/{model}/routing", query=query)

    def version(self, model: str, version: str) -> dict:
        """A registered version with its lineage; names holding "/" (such as "2026/03") work."""
        quoted = urllib.parse.quote(version, safe="/")
        return self.request("GET", f"/api/v1/models/{model}/versions/{quoted}")

    def compare(self, model: str, metric: str, baseline: str, candidate: str, **query) -> dict:
        """The candidate version against the baseline on one metric: difference, its interval,
        p-value and minimum detectable effect. Optional query: start, end (RFC 3339), segment,
        alpha, power."""
        query = {"metric": metric, "baseline": baseline, "candidate": candidate, **query}
        return self.request("GET", f"/api/v1/models/{model}/compare", query=query)

    def explain(self, model: str, metric: str, **query) -> dict:
        """Why a metric moved between a baseline window and a current one: its change split
        per slice of every segment, version and feature into mix and within effects, with
        each slice's p-value and q-value, largest first. Optional query (whole UTC days,
        RFC 3339): start, end, baseline_start, baseline_end; and version, segment."""
        query = {"metric": metric, **query}
        return self.request("GET", f"/api/v1/models/{model}/explain", query=query)

    def _log(self, path: str, records: Iterable[dict]) -> dict:
        """Send records in batches; the receipts are summed (errors re-indexed to the input)."""
        total = {"received": 0, "accepted": 0, "duplicates": 0, "rejected": 0, "errors": []}
        offset = 0
        for batch in batches(records, self.batch_size):
            receipt = self.request("POST", path, {"records": batch})
            for name in ("received", "accepted", "duplicates", "rejected"):
                total[name] += receipt[name]
            total["errors"] += [{**e, "index": e["index"] + offset} for e in receipt["errors"]]
            offset += len(batch)
        return total

    # -- HTTP ----------------------------------------------------------------------------------

    def request(self, method: str, path: str, body=None, *, query: dict | None = None):
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(self.max_retries + 1):
            try:
                return self._send(method, url, data)
            except _Transient as transient:
                if attempt == self.max_retries:
                    raise transient.error from None
                delay = min(self.backoff_s * 2**attempt, self.max_backoff_s)
                self.sleep(transient.wait_s if transient.wait_s is not None else delay)
        raise AssertionError("unreachable")

    def _send(self, method: str, url: str, data: bytes | None):
        headers = {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                text = answer.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as error:
            problem = _problem(error)
            failure = CanaryError(
                error.code, problem, f"{error.code} {problem.get('detail', error.reason)}"
            )
            if error.code >= 500 or error.code == 429:
                raise _Transient(failure, retry_after_s(error.headers.get("Retry-After"))) from None
            raise failure from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            raise _Transient(CanaryError(0, None, f"cannot reach Canary: {error}"), None) from None


class _Transient(Exception):
    def __init__(self, error: CanaryError, wait_s: float | None):
        self.error = error
        self.wait_s = wait_s


def _problem(error: urllib.error.HTTPError) -> dict:
    try:
        return json.loads(error.read() or b"{}")
    except ValueError:
        return {}
