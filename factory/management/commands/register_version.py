from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.problems import field_errors
from factory.manifest import VersionRegisterSerializer
from factory.models import MLModel
from factory.services import VersionConflict, version_register


class Command(BaseCommand):
    help = (
        "Register a model version from a manifest file: "
        '{"version": ..., "lineage": {...}, "reference": {...}} (as POST .../versions).'
    )

    def add_arguments(self, parser):
        parser.add_argument("model", help="the model's name")
        parser.add_argument("manifest", help="path of the JSON manifest")
        parser.add_argument("--actor", default="cli", help="recorded in the audit log")

    def handle(self, *args, model, manifest, actor, **options):
        target = MLModel.objects.filter(name=model).first()
        if target is None:
            raise CommandError(f"Unknown model {model!r}")
        try:
            body = json.loads(Path(manifest).read_text())
        except (OSError, ValueError) as error:
            raise CommandError(f"Cannot read {manifest}: {error}") from None
        serializer = VersionRegisterSerializer(data=body)
        if not serializer.is_valid():
            lines = [f"  {e['field']}: {e['message']}" for e in field_errors(serializer.errors)]
            raise CommandError("The manifest is invalid:\n" + "\n".join(lines))
        try:
            registration = version_register(model=target, actor=actor, **serializer.validated_data)
        except VersionConflict as error:
            raise CommandError(str(error)) from None
        done = "registered" if registration.created else "already registered (same body)"
        self.stdout.write(f"{target.name} {registration.version.version}: {done}")
