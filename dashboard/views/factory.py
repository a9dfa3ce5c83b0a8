"""Pages of the model factory: versions, rollouts, retrain requests, audit log.

They live in monitoring because a version's page sets its held-out metrics beside the metrics
measured in production (monitoring uses the factory, never the reverse).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime

from django.db.models import Min
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from accounts.roles import Role, role_required
from dashboard.sections.estimates import version_estimates
from factory.models import AuditEntry, MLModel, ModelVersion, RetrainRequest, Rollout
from factory.rollouts import plan_current
from monitoring.metrics.drift import DriftError
from monitoring.metrics.drift_report import DriftReport, drift_report
from monitoring.metrics.series import metric_check, metric_series
from monitoring.metrics.windows import MetricError
from monitoring.models import HourlyAggregate


def production_value(model: MLModel, version: str, metric: str) -> dict | None:
    """The version's latest weekly value of a metric in production, with its n."""
    try:
        metric_check(model, metric)
    except MetricError:
        return None
    points = metric_series(model=model, metric=metric, granularity="week", version=version)
    judged = [p for p in points if p.value is not None]
    return (
        {"value": judged[-1].value, "n": judged[-1].n, "start": judged[-1].start}
        if judged
        else None
    )


def feature_summary(name: str, feature: dict | None) -> dict | None:
    if not feature:
        return None
    if feature["kind"] == "categorical":
        top = sorted(feature["counts"].items(), key=lambda item: -item[1])[:5]
        return {
            "name": name,
            "kind": "categorical",
            "missing": feature["missing"],
            "n": sum(feature["counts"].values()),
            "top": top,
        }
    n = sum(feature["counts"])
    mean = sum(feature["sums"]) / n if n else None
    std = math.sqrt(max(feature["sum_sq"] / n - mean**2, 0)) if n else None
    return {
        "name": name,
        "kind": "numerical",
        "missing": feature["missing"],
        "n": n,
        "mean": mean,
        "std": std,
        "deciles": feature["deciles"],
    }


def reference_summary(reference: dict | None) -> dict | None:
    """Each feature of a registered reference, summarised the same way whether it came as
    rows or as a profile (counts and bins)."""
    if not reference:
        return None
    if "format" not in reference:
        rows = reference["rows"]
        features = [rows_feature_summary(name, rows) for name in reference_feature_names(rows)]
        return {"kind": "rows", "rows": len(rows), "features": features}
    features = [feature_summary(n, f) for n, f in sorted(reference["features"].items())]
    for special in ("score", "prediction"):
        if reference.get(special):
            features.append(feature_summary(special, reference[special]))
    return {"kind": "profile", "rows": reference["rows"], "features": features}


def reference_feature_names(rows: list[dict]) -> list[str]:
    return sorted({name for row in rows for name in (row.get("features") or {})})


def rows_feature_summary(name: str, rows: list[dict]) -> dict:
    """A feature of reference rows: numbers by mean and standard deviation, anything else by
    its most frequent values; missing counted apart."""
    values = [(row.get("features") or {}).get(name) for row in rows]
    present = [v for v in values if v is not None]
    summary = {"name": name, "missing": len(values) - len(present), "n": len(present)}
    numbers = [v for v in present if isinstance(v, int | float) and not isinstance(v, bool)]
    if present and len(numbers) == len(present):
        mean = sum(numbers) / len(numbers)
        spread = sum((v - mean) ** 2 for v in numbers) / len(numbers)
        return {**summary, "kind": "numerical", "mean": mean, "std": math.sqrt(spread)}
    top = Counter(str(v) for v in present).most_common(5)
    return {**summary, "kind": "categorical", "top": top}


def first_predictions(model: MLModel) -> dict[int, datetime]:
    """Each version's first hour with predictions (from the aggregates): when it went live."""
    hours = HourlyAggregate.objects.filter(model=model).values("version_id")
    return dict(hours.annotate(first=Min("hour")).values_list("version_id", "first"))


@role_required(Role.VIEWER)
def versions_page(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    versions = list(ModelVersion.objects.filter(model=model).order_by("-created_at", "-id"))
    first = first_predictions(model)
    for version in versions:
        version.first_prediction_at = first.get(version.pk)
    return render(request, "dashboard/versions.html", {"model": model, "versions": versions})


@role_required(Role.VIEWER)
def version_page(request, name: str, version: str):
    model = get_object_or_404(MLModel, name=name)
    row = get_object_or_404(ModelVersion, model=model, version=version)
    held_out = ((row.lineage or {}).get("validation") or {}).get("metrics") or {}
    row.first_prediction_at = first_predictions(model).get(row.pk)
    comparison = [
        {
            "metric": metric,
            "held_out": value,
            "production": production_value(model, version, metric),
        }
        for metric, value in sorted(held_out.items())
    ]
    context = {
        "model": model,
        "version": row,
        "comparison": comparison,
        "reference": reference_summary(row.reference),
        "drift": version_drift(model, row),
        "estimates": version_estimates(model=model, version=row.version, now=timezone.now()),
    }
    return render(request, "dashboard/version.html", context)


def version_drift(model: MLModel, version: ModelVersion) -> DriftReport | None:
    """The version's latest 7 days against its baseline (the registered reference first)."""
    try:
        return drift_report(model=model, version=version.version)
    except DriftError:
        return None


@role_required(Role.VIEWER)
def rollouts_page(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    history = Rollout.objects.filter(model=model).select_related("version").order_by("-id")
    plan = sorted(plan_current(model=model).items())
    context = {"model": model, "history": history, "plan": plan}
    return render(request, "dashboard/rollouts.html", context)


@role_required(Role.VIEWER)
def retrain_page(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    requests = RetrainRequest.objects.filter(model=model).select_related("version")[:200]
    return render(request, "dashboard/retrain.html", {"model": model, "requests": requests})


@role_required(Role.VIEWER)
def audit_page(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    entries = AuditEntry.objects.filter(model=model)[:500]
    return render(request, "dashboard/audit.html", {"model": model, "entries": entries})
