from __future__ import annotations

from django.core.management.base import BaseCommand

from monitoring.pipeline.retention import retention_run


class Command(BaseCommand):
    help = (
        "Remove raw predictions, outcomes and labels older than CANARY_RAW_RETENTION_DAYS (a "
        "month at a time), quarantined records and alert evaluations past their own horizons; "
        "make the coming months' partitions. Aggregates are kept. Beat runs the same daily."
    )

    def handle(self, *args, **options):
        run = retention_run()
        months = ", ".join(run.months_removed) or "none"
        self.stdout.write(
            f"raw rows before {run.raw_removed_before.isoformat()} removed "
            f"(months dropped this run: {months}); "
            f"{run.quarantine_removed} quarantined records and "
            f"{run.evaluations_removed} alert evaluations removed "
            f"in {run.duration_ms:.0f} ms"
        )
