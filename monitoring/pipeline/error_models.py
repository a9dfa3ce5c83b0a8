"""The regression versions' error models as the jobs apply them (fitted and frozen by
monitoring.metrics.loss_estimates)."""

from __future__ import annotations

from factory.models import MLModel, Task
from monitoring.models import ErrorModel
from monitoring.stats.direct_loss import ErrorModel as Fitted


def error_models_load(model: MLModel) -> dict[int, Fitted]:
    """{version id: its error model, own or borrowed}; empty for other tasks."""
    if model.task != Task.REGRESSION:
        return {}
    rows = ErrorModel.objects.filter(model=model).values_list("version_id", "terms")
    return {version_id: Fitted.from_json(terms) for version_id, terms in rows}
