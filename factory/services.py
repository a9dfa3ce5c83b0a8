"""Writes of the model factory: models and versions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from factory.models import AuditEntry, MLModel, ModelVersion


def model_create(
    *,
    name: str,
    task: str,
    positive_class=None,
    description: str = "",
    owners: list[str] = (),
    on_call: list[str] = (),
    actor: str = "",
    drift_settings: dict | None = None,
) -> MLModel:
    with transaction.atomic():
        model = MLModel.objects.create(
            name=name,
            task=task,
            positive_class=positive_class,
            description=description,
            owners=list(owners),
            on_call=list(on_call),
            drift_settings=drift_settings or {},
        )
        audit_record(
            model=model,
            actor=actor,
            action="model.create",
            subject=name,
            after={
                "task": task,
                "positive_class": positive_class,
                "owners": list(owners),
                "on_call": list(on_call),
            },
        )
    return model


@transaction.atomic
def versions_resolve(*, model: MLModel, names: set[str]) -> dict[str, int]:
    """Ids of the named versions; unknown ones are registered on the fly, without lineage."""
    if not names:
        return {}
    known = dict(
        ModelVersion.objects.filter(model=model, version__in=names).values_list("version", "id")
    )
    missing = names - known.keys()
    if missing:
        ModelVersion.objects.bulk_create(
            [ModelVersion(model=model, version=name) for name in sorted(missing)],
            ignore_conflicts=True,
        )
        known.update(
            ModelVersion.objects.filter(model=model, version__in=missing).values_list(
                "version", "id"
            )
        )
    return known


class VersionConflict(Exception):
    """Another body is already registered under this version; versions are immutable."""


@dataclass
class Registration:
    version: ModelVersion
    created: bool  # False: the very same body was registered before (idempotent repeat)


def body_digest(*, lineage: dict, reference: dict | None) -> str:
    """Content hash of a version's body, independent of key order and whitespace."""
    canonical = json.dumps(
        {"lineage": lineage, "reference": reference}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def audit_record(
    *, model: MLModel, actor: str, action: str, subject: str = "", before=None, after=None
) -> AuditEntry:
    return AuditEntry.objects.create(
        model=model, actor=actor, action=action, subject=subject, before=before, after=after
    )


def version_snapshot(version: ModelVersion) -> dict:
    return {
        "version": version.version,
        "has_lineage": version.has_lineage,
        "lineage": version.lineage,
        "reference": "profile"
        if version.reference and "format" in version.reference
        else "rows"
        if version.reference
        else None,
        "body_sha256": version.body_sha256,
    }


def version_register(
    *, model: MLModel, version: str, lineage: dict, reference: dict | None = None, actor: str = ""
) -> Registration:
    """Register a version's lineage (and reference) once; the database arbitrates races.

    A version first seen in prediction logs exists without lineage: registering it attaches the
    lineage to that row (a conditional update, so only one body can win), after which it is as
    immutable as one registered up front. The predictions logged before stay with it.
    """
    digest = body_digest(lineage=lineage, reference=reference)
    fields = {
        "lineage": lineage,
        "reference": reference,
        "has_lineage": True,
        "body_sha256": digest,
        "registered_at": timezone.now(),
    }
    for _ in range(3):  # create, or attach, or compare: each step settles one race
        existing = ModelVersion.objects.filter(model=model, version=version).first()
        if existing is not None and existing.has_lineage:
            if existing.body_sha256 != digest:
                raise VersionConflict(
                    f"Version {version!r} of {model.name} is registered with another body "
                    f"(sha256 {existing.body_sha256[:12]}…); versions are immutable, "
                    "register a new version instead."
                )
            return Registration(existing, created=False)
        with transaction.atomic():
            if existing is None:
                try:
                    with transaction.atomic():
                        row = ModelVersion.objects.create(model=model, version=version, **fields)
                except IntegrityError:
                    continue  # registered (or logged) concurrently: look again
                audit_record(
                    model=model,
                    actor=actor,
                    action="version.register",
                    subject=version,
                    after=version_snapshot(row),
                )
                return Registration(row, created=True)
            attached = ModelVersion.objects.filter(pk=existing.pk, has_lineage=False)
            if attached.update(**fields) == 1:
                row = ModelVersion.objects.get(pk=existing.pk)
                audit_record(
                    model=model,
                    actor=actor,
                    action="version.attach_lineage",
                    subject=version,
                    before=version_snapshot(existing),
                    after=version_snapshot(row),
                )
                return Registration(row, created=True)
    raise VersionConflict(f"Version {version!r} kept changing during registration; retry.")


@transaction.atomic
def retrain_webhook_set(*, model: MLModel, url: str, actor: str = "") -> None:
    before = {"retrain_webhook_url": model.retrain_webhook_url}
    MLModel.objects.filter(pk=model.pk).update(retrain_webhook_url=url)
    model.retrain_webhook_url = url
    audit_record(
        model=model,
        actor=actor,
        action="retrain.settings",
        before=before,
        after={"retrain_webhook_url": url},
    )
