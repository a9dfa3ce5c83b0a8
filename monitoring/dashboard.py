"""Server-rendered pages. They read aggregates only."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth.decorators import login_required
from django.http import HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from factory.models import MLModel, Task
from monitoring.alerts.services import alert_acknowledge, rule_silence
from monitoring.alerts.warnings import rule_warnings
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
    for rule in rules:
        rule.warnings = rule_warnings(rule=rule)
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
    alerts = (
        Alert.objects.filter(model=model)
        .select_related("rule")
        .prefetch_related("notifications")[:50]
    )
    context = {"model": model, "charts": charts, "alerts": alerts, "rules": rules}
    return render(request, "dashboard/model.html", context)


@login_required
@require_POST
def alert_acknowledge_form(request, name: str, pk: int):
    alert = get_object_or_404(Alert, model__name=name, pk=pk)
    alert_acknowledge(alert=alert, by=request.user.get_username())
    return redirect("dashboard:model", name=name)


@login_required
@require_POST
def alert_silence_form(request, name: str, pk: int):
    """Silence the alert's rule; `until` is read as UTC (the page shows UTC times)."""
    alert = get_object_or_404(Alert.objects.select_related("rule"), model__name=name, pk=pk)
    try:
        until = datetime.fromisoformat(request.POST.get("until", "")).replace(tzinfo=UTC)
    except ValueError:
        return HttpResponseBadRequest("until must be a date and time")
    reason = request.POST.get("reason", "").strip()[:500]
    if until <= timezone.now() or not reason:
        return HttpResponseBadRequest("until must be in the future and a reason is required")
    rule_silence(rule=alert.rule, until=until, reason=reason)
    return redirect("dashboard:model", name=name)
