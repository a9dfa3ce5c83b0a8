from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Scope
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it, once, alone on stdout. Only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scope", action="append", required=True, choices=Scope.values, dest="scopes"
        )
        parser.add_argument("--model", action="append", default=[], dest="models")

    def handle(self, *args, name, scopes, models, **options):
        ml_model = apps.get_model("factory", "MLModel")  # by label: accounts sit below factory
        known = set(ml_model.objects.filter(name__in=models).values_list("name", flat=True))
        unknown = sorted(set(models) - known)
        if unknown:
            raise CommandError(f"Unknown model(s): {', '.join(unknown)}")
        raw_key = api_key_create(name=name, scopes=scopes, model_names=models)
        self.stdout.write(raw_key)
