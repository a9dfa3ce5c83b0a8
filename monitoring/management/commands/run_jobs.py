from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from factory.models import MLModel
from monitoring.jobs import jobs_run


class Command(BaseCommand):
    help = "Join, aggregate, evaluate alert rules and send notifications, once, in the foreground."

    def add_arguments(self, parser):
        parser.add_argument("--model", help="only this model (its name)")
        parser.add_argument(
            "--sweep", action="store_true", help="re-join everything, not only what is new"
        )

    def handle(self, *args, model=None, sweep=False, **options):
        models = MLModel.objects.all()
        if model:
            models = models.filter(name=model)
            if not models:
                raise CommandError(f"Unknown model {model!r}")
        for each in models:
            report = jobs_run(model_id=each.pk, sweep=sweep)
            self.stdout.write(
                f"{each.name}: {report.labels_written} labels joined, "
                f"{report.hours_refreshed} hours aggregated, {report.rules_evaluated} rules "
                f"evaluated, {report.notifications_sent} notifications sent"
            )
