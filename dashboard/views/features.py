from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET

from accounts.roles import Role, role_required
from dashboard.params import BadQuery, bad_request, scope_from
from dashboard.sections.base import DAYS_CHOICES, model_segments, model_versions
from dashboard.sections.drift import feature_page_get
from dashboard.sections.slices import slice_heatmap, slice_metric_default, slice_metrics
from factory.models import MLModel
from monitoring.metrics.drift import DriftError
from monitoring.metrics.windows import WINDOW, MetricError


@require_GET
@role_required(Role.VIEWER)
def feature_page(request, name: str, feature: str):
    model = get_object_or_404(MLModel, name=name)
    try:
        scope = scope_from(request)
        page = feature_page_get(model=model, feature=feature, scope=scope)
        metric = request.GET.get("metric") or slice_metric_default(model)
        slices = metric and slice_heatmap(
            model=model, feature=feature, metric=metric, scope=scope, now=timezone.now()
        )
    except (BadQuery, DriftError, MetricError) as error:
        return bad_request(request, error)
    context = {
        "model": model,
        "page": page,
        "scope": scope,
        "versions": model_versions(model),
        "segments": model_segments(model),
        "granularities": list(WINDOW),
        "days_choices": DAYS_CHOICES,
        "slices": slices,
        "slice_metric": metric,
        "slice_metrics": slice_metrics(model),
        "model_url": reverse("dashboard:model", kwargs={"name": model.name})
        + "?"
        + urlencode({**scope.query(), "days": scope.days or "all"})
        + "#drift",
    }
    return render(request, "dashboard/feature.html", context)
