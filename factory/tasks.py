from __future__ import annotations

from celery import shared_task

from factory.retrain import retrain_request_deliver as deliver


@shared_task(ignore_result=True)
def retrain_request_deliver(request_id: int) -> None:
    deliver(request_id=request_id)


@shared_task(ignore_result=True)
def retrain_requests_deliver_all() -> None:
    """Retry webhooks that failed transiently (the beat runs this beside the jobs)."""
    from factory.retrain import retrain_requests_deliver

    retrain_requests_deliver()
