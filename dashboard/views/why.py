"""The "Why?" page: why a metric moved between a window and the one before it (or a baseline),
from an alert's page or a chart point's rows."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from accounts.roles import Role, role_required
from dashboard.params import BadQuery, bad_request, param, time_param
from dashboard.sections.why import why_sections
from factory.models import MLModel
from monitoring.metrics.explain import explain, explain_keys, whole_days
from monitoring.metrics.registry import metric_label
from monitoring.metrics.windows import MetricError

DEFAULT_METRIC = {"regression": "mae"}  # else accuracy


def metric_check(model: MLModel, metric: str) -> None:
    """A metric the page cannot explain is a 400 in the metrics' own words."""
    keys = explain_keys(model)
    if metric not in keys:
        labels = ", ".join(metric_label(key) for key in keys)
        raise BadQuery(f"the Why? page explains {labels}; not {metric_label(metric)}")


@require_GET
@role_required(Role.VIEWER)
def why_page(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    metric = request.GET.get("metric") or DEFAULT_METRIC.get(model.task, "accuracy")
    scope = {"version": request.GET.get("version") or None, "segment": param(request, "segment")}
    try:
        metric_check(model, metric)
        start, end = time_param(request, "start"), time_param(request, "end")
        if start and end:  # a chart point's hour is explained by its day
            start, end = whole_days(start, end)
        answer = explain(
            model=model,
            metric=metric,
            start=start,
            end=end,
            baseline_start=time_param(request, "baseline_start"),
            baseline_end=time_param(request, "baseline_end"),
            **scope,
        )
    except (BadQuery, MetricError) as error:
        return bad_request(request, error)
    context = {
        "model": model,
        "scope": scope,
        "metrics": explain_keys(model),
        "model_url": reverse("dashboard:model", kwargs={"name": model.name}),
        **why_sections(model=model.name, answer=answer, scope=scope),
    }
    return render(request, "dashboard/why.html", context)
