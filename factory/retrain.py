"""Retrain requests: recorded once per firing alert, then delivered.

Delivery has three hooks, all fed the same JSON payload:
- a webhook: POST to the model's `retrain_webhook_url`, retried with backoff while it fails
  transiently (network, 5xx, 408, 429), marked failed on other answers or after `MAX_ATTEMPTS`;
- the Django signal `retrain_requested` (in-process listeners, e.g. a pipeline trigger);
- a Celery task named by the `CANARY_RETRAIN_TASK` setting, sent with the payload as its argument,
  for training pipelines that consume Canary's broker.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.dispatch import Signal

from config.celery import app
from factory.models import MLModel, RetrainRequest
from factory.retrain_delivery import retrain_payload
from factory.rollouts import plan_current
from factory.tasks import retrain_request_deliver

log = logging.getLogger(__name__)

# Sent once per request, after commit, with `request` (RetrainRequest) and `payload` (dict).
retrain_requested = Signal()


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
                model=model,
                version=version,
                alert_id=alert_id,
                rule_id=rule_id,
                metric=metric,
                value=value,
                window_start=window_start,
                window_end=window_end,
                manifest=manifest,
                webhook_url=model.retrain_webhook_url,
            )
    except IntegrityError:
        return None
    request_id = request.pk
    transaction.on_commit(lambda: retrain_request_announce(request_id))
    return request


def retrain_request_announce(request_id: int) -> None:
    """Signal listeners, hand the payload to the configured Celery task, queue the webhook."""
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
    if app.conf.task_always_eager and task_name in app.tasks:
        app.tasks[task_name].apply(args=[payload], throw=True)
    else:
        app.send_task(task_name, args=[payload])
