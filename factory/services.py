"""Writes of the model factory: models and versions."""

from __future__ import annotations

from django.db import transaction

from factory.models import MLModel, ModelVersion


def model_create(
    *,
    name: str,
    task: str,
    positive_class=None,
    description: str = "",
    owners: list[str] = (),
    on_call: list[str] = (),
) -> MLModel:
    return MLModel.objects.create(
        name=name,
        task=task,
        positive_class=positive_class,
        description=description,
        owners=list(owners),
        on_call=list(on_call),
    )


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
