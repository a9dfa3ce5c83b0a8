"""Delivering retrain requests to the configured webhook: claimed once, retried with backoff."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import F, Q
from django.utils import timezone

from common.http import OutboundError, post_json
from factory.models import RetrainRequest, RetrainStatus

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
CLAIM_TTL = timedelta(minutes=5)
WEBHOOK_TIMEOUT_S = 10
WEBHOOK_HEADERS = {"User-Agent": "canary-retrain/1"}


def retrain_payload(request: RetrainRequest) -> dict:
    return {
        "id": request.pk,
        "model": request.model.name,
        "reason": {
            "alert_id": request.alert_id,
            "rule_id": request.rule_id,
            "metric": request.metric,
            "value": request.value,
        },
        "window": {
            "start": request.window_start.isoformat(),
            "end": request.window_end.isoformat(),
        },
        "version": request.manifest["version"] if request.manifest else None,
        "lineage": request.manifest["lineage"] if request.manifest else None,
        "requested_at": request.created_at.isoformat(),
    }


def webhook_post(url: str, payload: dict) -> None:
    """POST the request; raises OutboundError, permanent or not."""
    post_json(url, payload, timeout_s=WEBHOOK_TIMEOUT_S, headers=WEBHOOK_HEADERS)


def retrain_claim(request_id: int) -> bool:
    now = timezone.now()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    due = RetrainRequest.objects.filter(
        free, pk=request_id, status=RetrainStatus.PENDING, attempts__lt=MAX_ATTEMPTS
    )
    return due.update(claimed_until=now + CLAIM_TTL, attempts=F("attempts") + 1) == 1


def retrain_request_deliver(*, request_id: int) -> bool:
    """POST the request to the model's webhook if this caller claims it; record the result."""
    if not retrain_claim(request_id):
        return False
    request = RetrainRequest.objects.select_related("model").get(pk=request_id)
    requests = RetrainRequest.objects.filter(pk=request_id)
    if not request.webhook_url:  # the signal and the task hook were the delivery
        requests.update(status=RetrainStatus.DELIVERED, delivered_at=timezone.now(), error="")
        return True
    try:
        webhook_post(request.webhook_url, retrain_payload(request))
    except OutboundError as error:
        log.warning("retrain webhook %s failed: %s", request_id, error)
        last = error.permanent or request.attempts >= MAX_ATTEMPTS
        requests.update(
            error=str(error),
            status=RetrainStatus.FAILED if last else RetrainStatus.PENDING,
            claimed_until=timezone.now() + timedelta(seconds=min(30 * 2**request.attempts, 3600)),
        )
        return False
    requests.update(status=RetrainStatus.DELIVERED, delivered_at=timezone.now(), error="")
    return True


def retrain_requests_deliver(*, model_id: int | None = None) -> int:
    """Deliver every request still due (retries after a transient failure)."""
    due = RetrainRequest.objects.filter(status=RetrainStatus.PENDING, attempts__lt=MAX_ATTEMPTS)
    if model_id is not None:
        due = due.filter(model_id=model_id)
    return sum(retrain_request_deliver(request_id=pk) for pk in due.values_list("pk", flat=True))
