"""Default rules: every model gets two-sided band rules on its headline metrics.

Band rules with k = 4 standard errors of the window around the trailing mean of 14 days:
about 6 in 100,000 windows of a stable metric fall outside by chance, so the defaults do
not cry wolf, while a change larger than the metric's minimum detectable effect fires.
A model also gets one on its estimated headline (ROC AUC, accuracy or MAE), which moves
before the outcomes arrive. Business values get theirs when they first appear in the
outcomes. Deleted defaults are not re-created (DefaultRuleApplied remembers them).
"""

from __future__ import annotations

from django.db import transaction

from factory.models import MLModel
from monitoring.metrics.registry import ESTIMATED_HEADLINE, HEADLINES
from monitoring.models import AlertRule, DefaultRuleApplied, HourlyValue

DEFAULT_BAND = {
    "kind": "band",
    "k": 4.0,
    "baseline_windows": 14,
    "granularity": "day",
    "min_count": 100,
    "for_windows": 1,
    "resolve_windows": 2,
    "sides": "both",
    "is_default": True,
}
# The feed is silent when a whole day passes without a prediction.
DEFAULT_NO_DATA = {
    "metric": "predictions",
    "kind": "no_data",
    "granularity": "day",
    "min_count": 1,
    "for_windows": 1,
    "resolve_windows": 1,
    "severity": "critical",
    "is_default": True,
}


@transaction.atomic
def alert_rules_default_create(*, model: MLModel) -> list[AlertRule]:
    """The default rules of a new model: bands on its headline metrics (and on its estimated
    headline, which moves before any outcome arrives) and a no_data rule."""
    estimated = ESTIMATED_HEADLINE.get(model.task)
    metrics = (*HEADLINES.get(model.task, ()), *([estimated] if estimated else []))
    DefaultRuleApplied.objects.bulk_create(
        [DefaultRuleApplied(model=model, metric=m) for m in (*metrics, "predictions")],
        ignore_conflicts=True,
    )
    rules = [AlertRule(model=model, metric=m, **DEFAULT_BAND) for m in metrics]
    rules.append(AlertRule(model=model, **DEFAULT_NO_DATA))
    return AlertRule.objects.bulk_create(rules)


def value_rules_ensure(*, model_id: int) -> int:
    """Band rules for business values seen for the first time; returns how many were added."""
    values = HourlyValue.objects.filter(model_id=model_id)
    names = set(values.values_list("name", flat=True).distinct())
    metrics = {f"value:{name}" for name in names}
    metrics -= set(
        DefaultRuleApplied.objects.filter(model_id=model_id, metric__in=metrics).values_list(
            "metric", flat=True
        )
    )
    added = 0
    for metric in sorted(metrics):  # rare: once per value name in a model's life
        with transaction.atomic():
            _, created = DefaultRuleApplied.objects.get_or_create(model_id=model_id, metric=metric)
            if created:
                AlertRule.objects.create(model_id=model_id, metric=metric, **DEFAULT_BAND)
                added += 1
    return added
