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
        settings.CANARY_JOBS_INTERVAL_S,
        sender.signature("monitoring.tasks.jobs_run_all"),
        name="jobs",
    )
    # The incremental join reads past ids whose transactions were still open; the sweep
    # re-joins everything (idempotently) so that such rows wait at most this long.
    sender.add_periodic_task(
        settings.CANARY_SWEEP_INTERVAL_S,
        sender.signature("monitoring.tasks.jobs_run_all", kwargs={"sweep": True}),
        name="sweep",
    )
    sender.add_periodic_task(
        settings.CANARY_JOBS_INTERVAL_S,
        sender.signature("factory.tasks.retrain_requests_deliver_all"),
    )
    # Raw rows past CANARY_RAW_RETENTION_DAYS go a month at a time; the next months'
    # partitions are made ahead of the data that needs them.
    sender.add_periodic_task(
        settings.CANARY_RETENTION_INTERVAL_S,
        sender.signature("monitoring.tasks.retention_run"),
        name="retention",
    )
