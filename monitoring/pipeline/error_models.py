"""The regression versions' error models as the jobs apply them (fitted and frozen by
monitoring.metrics.loss_estimates)."""

from __future__ import annotations

from factory.models import MLModel, Task
from monitoring.models import ErrorModel
from monitoring.pipeline.chunk_rows import ChunkRows
from monitoring.stats.direct_loss import ErrorModel as Fitted
from monitoring.stats.direct_loss import Inputs


def error_models_load(model: MLModel) -> dict[int, Fitted]:
    """{version id: its error model, own or borrowed}; empty for other tasks."""
    if model.task != Task.REGRESSION:
        return {}
    rows = ErrorModel.objects.filter(model=model).values_list("version_id", "terms")
    return {version_id: Fitted.from_json(terms) for version_id, terms in rows}


def inputs_of(rows: ChunkRows) -> Inputs:
    """A chunk's rows as the error model's inputs (the same arrays, not copied)."""
    return Inputs(
        rows.prediction_num,
        rows.numbers,
        {name: (column.codes, column.keys) for name, column in rows.categories.items()},
    )
