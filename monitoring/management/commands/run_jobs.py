from __future__ import annotations

import logging

from django.core.management.base import BaseCommand, CommandError

from factory.models import MLModel
from monitoring.jobs import JobsReport, jobs_run

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Join, aggregate, evaluate alert rules and send notifications, once, in the foreground. "
        "Every model is processed even if some fail; the exit status is 1 if any did."
    )

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
        failed = [each.name for each in models if not self.model_run(each, sweep)]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(models)} models have failing jobs: {', '.join(failed)}"
            )

    def model_run(self, model: MLModel, sweep: bool) -> bool:
        """Run one model's jobs and say what they did; False if anything failed."""
        try:
            report = jobs_run(model_id=model.pk, sweep=sweep)
        except Exception as error:  # one model's failure must not stop the others
            log.exception("jobs of model %s failed", model.name)
            self.stderr.write(f"{model.name}: failed: {type(error).__name__}: {error}")
            return False
        self.stdout.write(self.summary(model, report))
        for failure in report.failures:
            self.stderr.write(f"{model.name}: failing: {failure}")
        return not report.failed

    def summary(self, model: MLModel, report: JobsReport) -> str:
        return (
            f"{model.name}: {report.labels_written} labels joined, "
            f"{report.hours_refreshed} hours aggregated, {report.rules_evaluated} rules "
            f"evaluated, {report.messages_sent} alert messages sent"
        )
