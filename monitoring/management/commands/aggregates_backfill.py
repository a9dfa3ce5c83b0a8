from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from factory.models import MLModel
from monitoring.pipeline.backfill import history_ranges
from monitoring.tasks import aggregates_backfill


class Command(BaseCommand):
    help = (
        "Aggregate the stored history of models again (after an upgrade that adds kinds of "
        "aggregate, before raw rows expire): a Celery task per range of days, so every worker "
        "takes a share. Without a broker (the embedded mode) the ranges run here, in turn."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="only this model (its name); default: every model")
        parser.add_argument("--days", type=int, default=7, help="days per task (default 7)")

    def handle(self, *args, model=None, days=7, **options):
        if days < 1:
            raise CommandError("--days must be at least 1")
        models = MLModel.objects.order_by("name")
        if model:
            models = models.filter(name=model)
            if not models:
                raise CommandError(f"Unknown model {model!r}")
        for each in models:
            ranges = history_ranges(each.pk, days)
            if not ranges:
                self.stdout.write(f"{each.name}: no predictions stored, nothing to do")
                continue
            aggregates_backfill.delay(each.pk, days)
            first, last = ranges[0][0].date(), (ranges[-1][1]).date()
            self.stdout.write(
                f"{each.name}: {len(ranges)} tasks of {days} day{'s' if days > 1 else ''} "
                f"queued, {first} to {last}"
            )
