from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True)
def retrain_request_deliver(request_id: int) -> None:
    from factory.retrain_delivery import retrain_request_deliver

    retrain_request_deliver(request_id=request_id)


@shared_task(ignore_result=True)
def retrain_requests_deliver_all() -> None:
    """Retry webhooks that failed transiently (the beat runs this beside the jobs)."""
    from factory.retrain_delivery import retrain_requests_deliver

    retrain_requests_deliver()
