"""Server-rendered pages. They read aggregates only."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render

from factory.models import MLModel, Task
from monitoring.charts import metric_figure
from monitoring.factory_pages import rollout_annotations
from monitoring.metrics import metric_series
from monitoring.models import Alert, AlertRule, RuleKind
from monitoring.selectors import models_with_health

CHARTS = (
    ("predictions", "Predictions per day", "predictions"),
    ("label_coverage", "Label coverage per day", "share labelled"),
    ("accuracy", "Accuracy per day", "accuracy"),
)


@login_required
def overview(request):
    models = models_with_health(MLModel.objects.all())
    return render(request, "dashboard/overview.html", {"models": models})


def rule_bounds(rules, metric: str) -> list[tuple[str, float]]:
    bounds = []
    for rule in rules:
        if rule.metric == metric and rule.kind == RuleKind.STATIC:
            bounds += [(f"rule #{rule.pk} lower", rule.lower)] if rule.lower is not None else []
            bounds += [(f"rule #{rule.pk} upper", rule.upper)] if rule.upper is not None else []
    return bounds


@login_required
def model_page(request, name: str):
    (model,) = models_with_health([get_object_or_404(MLModel, name=name)])
    rules = list(AlertRule.objects.filter(model=model))
    events = rollout_annotations(model)
    charts = []
    for metric, title, y_title in CHARTS:
        if metric == "accuracy" and model.task == Task.REGRESSION:
            continue
        points = metric_series(model=model, metric=metric, granularity="day")
        figure = metric_figure(
            title=title,
            points=points,
            y_title=y_title,
            bounds=rule_bounds(rules, metric),
            annotations=events,
        )
        charts.append({"metric": metric, "title": title, "figure": figure, "points": points})
    alerts = Alert.objects.filter(model=model).select_related("rule")[:50]
    context = {"model": model, "charts": charts, "alerts": alerts, "rules": rules}
    return render(request, "dashboard/model.html", context)
