from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("canary")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def schedule_jobs(sender: Celery, **_kwargs) -> None:
    from django.conf import settings

    sender.add_periodic_task(
        settings.CANARY_JOBS_INTERVAL_S, sender.signature("monitoring.tasks.jobs_run_all")
    )
    sender.add_periodic_task(
        settings.CANARY_JOBS_INTERVAL_S,
        sender.signature("factory.tasks.retrain_requests_deliver_all"),
    )
