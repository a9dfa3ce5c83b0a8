"""Retrain requests: recorded once per firing alert, then delivered.

Delivery has three hooks, all fed the same JSON payload:
- a webhook: POST to the model's `retrain_webhook_url`, retried with backoff while it fails
  transiently (network, 5xx, 429), marked failed on other answers or after `MAX_ATTEMPTS`;
- the Django signal `retrain_requested` (in-process listeners, e.g. a pipeline trigger);
- a Celery task named by the `CANARY_RETRAIN_TASK` setting, sent with the payload as its argument,
  for training pipelines that consume Canary's broker.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.dispatch import Signal
from django.utils import timezone

from factory.models import MLModel, RetrainRequest, RetrainStatus
from factory.rollouts import plan_current

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
CLAIM_TTL = timedelta(minutes=5)
WEBHOOK_TIMEOUT_S = 10

# Sent once per request, after commit, with `request` (RetrainRequest) and `payload` (dict).
retrain_requested = Signal()


class WebhookError(Exception):
    def __init__(self, message: str, permanent: bool):
        super().__init__(message)
        self.permanent = permanent


def production_version(model: MLModel):
    """The version with the largest share of all traffic in the current plan."""
    routes = plan_current(model=model).get("*") or []
    if not routes:
        return None
    best = max(routes, key=lambda r: r.share)
    return model.versions.filter(version=best.version).first()


def retrain_request_create(
    *,
    model: MLModel,
    alert_id: int,
    rule_id: int | None,
    metric: str,
    value: float | None,
    window_start: datetime,
    window_end: datetime,
    version_name: str | None = None,
) -> RetrainRequest | None:
    """Record the request for this alert unless it exists; None when it already did.

    The manifest is that of the version the rule watches, else of the production version (the
    largest share of every segment), else of the latest version.
    """
    if RetrainRequest.objects.filter(alert_id=alert_id).exists():
        return None  # evaluated again while still firing: the common case, kept cheap
    version = (
        (version_name and model.versions.filter(version=version_name).first())
        or production_version(model)
        or model.versions.order_by("-created_at", "-id").first()
    )
    manifest = None
    if version is not None:
        manifest = {"version": version.version, "lineage": version.lineage}
    try:
        with transaction.atomic():  # the unique alert_id makes it once per firing, even in races
            request = RetrainRequest.objects.create(
                model=model, version=version, alert_id=alert_id, rule_id=rule_id, metric=metric,
                value=value, window_start=window_start, window_end=window_end,
                manifest=manifest, webhook_url=model.retrain_webhook_url,
            )  # fmt: skip
    except IntegrityError:
        return None
    request_id = request.pk
    transaction.on_commit(lambda: retrain_request_announce(request_id))
    return request


def retrain_payload(request: RetrainRequest) -> dict:
    return {
        "id": request.pk,
        "model": request.model.name,
        "reason": {
            "alert_id": request.alert_id, "rule_id": request.rule_id, "metric": request.metric,
            "value": request.value,
        },
        "window": {
            "start": request.window_start.isoformat(), "end": request.window_end.isoformat(),
        },
        "version": request.manifest["version"] if request.manifest else None,
        "lineage": request.manifest["lineage"] if request.manifest else None,
        "requested_at": request.created_at.isoformat(),
    }  # fmt: skip


def retrain_request_announce(request_id: int) -> None:
    """Signal listeners, hand the payload to the configured Celery task, queue the webhook."""
    from factory.tasks import retrain_request_deliver

    request = RetrainRequest.objects.select_related("model").get(pk=request_id)
    payload = retrain_payload(request)
    # A failing listener or broker must not undo the request nor stop alert evaluation:
    # the error is kept on the request, and the webhook is still queued.
    problems = [
        f"signal receiver {receiver!r}: {outcome}"
        for receiver, outcome in retrain_requested.send_robust(
            sender=RetrainRequest, request=request, payload=payload
        )
        if isinstance(outcome, Exception)
    ]
    try:
        retrain_task_send(payload)
    except Exception as error:  # any broker or task error is reported the same way
        problems.append(f"task {settings.CANARY_RETRAIN_TASK}: {type(error).__name__}: {error}")
    if problems:
        log.warning("retrain request %s hooks failed: %s", request_id, problems)
        RetrainRequest.objects.filter(pk=request_id).update(hooks_error="; ".join(problems))
    retrain_request_deliver.delay(request_id)


def retrain_task_send(payload: dict) -> None:
    """Hand the payload to the configured Celery task (run in-process in the embedded mode)."""
    task_name = settings.CANARY_RETRAIN_TASK
    if not task_name:
        return
    from config.celery import app

    if app.conf.task_always_eager and task_name in app.tasks:
        app.tasks[task_name].apply(args=[payload], throw=True)
    else:
        app.send_task(task_name, args=[payload])


def webhook_post(url: str, payload: dict) -> None:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "canary-retrain/1"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as answer:
            answer.read()
    except urllib.error.HTTPError as error:
        transient = error.code >= 500 or error.code == 429
        raise WebhookError(f"HTTP {error.code} from the webhook", permanent=not transient) from None
    except (urllib.error.URLError, OSError) as error:
        raise WebhookError(f"{type(error).__name__}: {error}", permanent=False) from None


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
    except WebhookError as error:
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
