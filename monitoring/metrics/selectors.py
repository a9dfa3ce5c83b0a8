"""Reads the API and the dashboard share: model health and recency."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Max
from django.utils import timezone

from factory.models import MLModel
from monitoring.models import Alert, AlertState, HourlyAggregate, Prediction

SILENT_AFTER = timedelta(hours=24)


def models_with_health(models) -> list[MLModel]:
    """Annotate each model with `health` and `last_prediction_at`, in three queries."""
    models = list(models)
    ids = [m.pk for m in models]
    open_states = {model_id: set() for model_id in ids}
    for model_id, state in (
        Alert.objects.filter(model_id__in=ids)
        .exclude(state=AlertState.RESOLVED)
        .values_list("model_id", "state")
    ):
        open_states[model_id] = open_states[model_id] | {state}
    last_hours = dict(
        HourlyAggregate.objects.filter(model_id__in=ids)
        .values("model_id")
        .annotate(last=Max("hour"))
        .values_list("model_id", "last")
    )
    last_seen = last_prediction_times(ids)
    now = timezone.now()
    for model in models:
        model.last_prediction_at = last_seen.get(model.pk)
        last_hour = last_hours.get(model.pk)
        if AlertState.FIRING in open_states[model.pk]:
            model.health = "firing"
        elif AlertState.PENDING in open_states[model.pk]:
            model.health = "warning"
        elif last_hour is None or now - last_hour > SILENT_AFTER:
            model.health = "no_data"
        else:
            model.health = "ok"
    return models


def last_prediction_times(model_ids: list[int]) -> dict:
    # One index probe per model on (model, timestamp), not a scan.
    return {
        model_id: Prediction.objects.filter(model_id=model_id)
        .order_by("-timestamp")
        .values_list("timestamp", flat=True)
        .first()
        for model_id in model_ids
    }
