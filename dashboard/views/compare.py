"""Compare versions: baseline against candidate on one metric, with the API's numbers
(monitoring.metrics.reports.comparison_report) told in plain words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.roles import Role, role_required
from dashboard.charts import BAND, LINE, events_draw, events_within, layout, plain
from dashboard.params import ALL, BadQuery, bad_request, param
from dashboard.sections.base import Chart, chart_events, model_segments
from dashboard.sections.estimates import compare_estimates
from factory.models import MLModel, ModelVersion
from monitoring.metrics.registry import (
    HIGHER,
    LOWER,
    OVERVIEW,
    PROPORTION,
    metric_get,
    metric_label,
)
from monitoring.metrics.reports import VersionComparison, comparable, comparison_report
from monitoring.metrics.series import metric_names, metric_series
from monitoring.metrics.traffic import traffic_note
from monitoring.metrics.windows import MetricError

COMPARE_DAYS = (7, 14, 30, 90)
DEFAULT_COMPARE_DAYS = 30
CANDIDATE = "#ea580c"
CANDIDATE_BAND = "rgba(234, 88, 12, 0.15)"


@dataclass
class CompareQuery:
    metric: str
    baseline: str
    candidate: str
    segment: str | None
    days: int | None

    def span(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        if self.days is None:
            return None, None
        hour = now.replace(minute=0, second=0, microsecond=0)
        return hour - timedelta(days=self.days), None


def comparable_metrics(model: MLModel) -> list[str]:
    """The model's metrics that have a two-sample test."""
    names = []
    for metric in metric_names(model):
        try:
            comparable(metric)
        except MetricError:
            continue
        names.append(metric)
    return names


def default_versions(versions: list[str]) -> tuple[str, str]:
    """(baseline, candidate): the two newest versions, the newest as the candidate."""
    if len(versions) >= 2:
        return versions[-2], versions[-1]
    return (versions[0], versions[0]) if versions else ("", "")


def compare_query(request, model: MLModel, versions: list[str]) -> CompareQuery:
    baseline, candidate = default_versions(versions)
    baseline = request.GET.get("baseline") or baseline
    candidate = request.GET.get("candidate") or candidate
    metric = request.GET.get("metric") or OVERVIEW.get(model.task, "accuracy")
    text = request.GET.get("days") or str(DEFAULT_COMPARE_DAYS)
    if text != "all" and (not text.isdigit() or not 1 <= int(text) <= 3660):
        raise BadQuery(f"days {text!r} must be a whole number from 1 to 3660, or all")
    days = None if text == "all" else int(text)
    return CompareQuery(metric, baseline, candidate, param(request, "segment"), days)


def unit_of(metric: str) -> tuple[float, str]:
    """(scale, unit) for telling a difference: proportions in percentage points."""
    if metric_get(metric).kind == PROPORTION:
        return 100.0, "points"
    return 1.0, ""


def amount(value: float, metric: str) -> str:
    scale, unit = unit_of(metric)
    number = f"{abs(value) * scale:.3g}"
    return f"{number} {unit}" if unit else number


def p_text(p_value: float) -> str:
    return "p < 0.0001" if p_value < 1e-4 else f"p = {p_value:.2g}"


def direction_word(metric: str, difference: float) -> str:
    """better, worse, higher or lower: which way the candidate moved (the last two for
    metrics with no good direction, such as rates of predictions and bias)."""
    up = difference > 0
    good = metric_get(metric).good
    if good == HIGHER:
        return "better" if up else "worse"
    if good == LOWER:
        return "worse" if up else "better"
    return "higher" if up else "lower"


def shown_numbers(comparison: VersionComparison) -> dict:
    """The difference, its interval and the MDE in the unit the verdict uses."""
    scale, unit = unit_of(comparison.metric)
    keys = ("difference", "ci_low", "ci_high", "mde")
    numbers = {k: None if (v := getattr(comparison, k)) is None else v * scale for k in keys}
    relative = comparison.relative_difference
    return {
        **numbers,
        "unit": unit or "(the metric's unit)",
        "relative_pct": None if relative is None else relative * 100,
    }


def comparison_verdict(comparison: VersionComparison, *, alpha: float = 0.05) -> str:
    """The comparison in one or two plain sentences."""
    metric = comparison.metric
    label = metric_label(metric)
    base, cand = comparison.baseline, comparison.candidate
    difference, mde, p_value = comparison.difference, comparison.mde, comparison.p_value
    if difference is None:
        return (
            f"Not enough data to compare {label}: {base.version} has {base.n} and "
            f"{cand.version} has {cand.n} observations in this window."
        )
    visible = (
        f"a change under {amount(mde, metric)} would not be visible with this traffic"
        if mde is not None
        else "the smallest visible change cannot be told from this traffic"
    )
    if p_value is not None and p_value < alpha and difference != 0:
        word = direction_word(metric, difference)
        return (
            f"The candidate {cand.version} is {word} by {amount(difference, metric)} on "
            f"{label} ({p_text(p_value)}); {visible}."
        )
    if comparison.powered:
        return (
            f"No clear difference on {label}, although the observed gap "
            f"({amount(difference, metric)}) is as large as the smallest visible change; {visible}."
        )
    return (
        f"No clear difference on {label}: the candidate {cand.version} is within the noise "
        f"of {base.version} ({p_text(p_value)}); {visible}, so a smaller real "
        "difference is not ruled out."
    )


def in_clause(lead: str, verdict: str) -> str:
    """'Over all their traffic, the candidate ...': a verdict said of part of the traffic."""
    return f"{lead}, {verdict[0].lower()}{verdict[1:]}"


def trend_figure(model: MLModel, query: CompareQuery, now: datetime) -> tuple[dict, str] | None:
    """Both versions' daily values with their intervals, and the chart's text alternative."""
    start, end = query.span(now)
    traces, summary = [], []
    for version, color, band in (
        (query.baseline, LINE, BAND),
        (query.candidate, CANDIDATE, CANDIDATE_BAND),
    ):
        points = metric_series(
            model=model,
            metric=query.metric,
            granularity="day",
            start=start,
            end=end,
            version=version,
            segment=query.segment,
        )
        known = [p for p in points if p.value is not None and p.n]
        if not known:
            continue
        x = [p.start.isoformat() for p in known]
        with_ci = [p for p in known if p.ci_low is not None and p.ci_high is not None]
        if with_ci:
            ribbon = [p.start.isoformat() for p in with_ci]
            traces.append(
                {
                    "type": "scatter",
                    "x": ribbon + ribbon[::-1],
                    "fill": "toself",
                    "y": [p.ci_high for p in with_ci] + [p.ci_low for p in with_ci][::-1],
                    "fillcolor": band,
                    "line": {"width": 0},
                    "hoverinfo": "skip",
                    "mode": "lines",
                    "showlegend": False,
                }
            )
        traces.append(
            {
                "type": "scatter",
                "x": x,
                "y": [p.value for p in known],
                "mode": "lines+markers",
                "name": plain(version),
                "line": {"color": color},
                "marker": {"color": color},
            }
        )
        summary.append(f"{version}: {len(known)} days, latest {known[-1].value:.4g}")
    if not traces:
        return None
    entry = metric_get(query.metric)
    title = plain(f"{entry.label} per day, {query.baseline} and {query.candidate}")
    figure_layout = layout(
        title=title, x_title="day (UTC)", y_title=plain(entry.axis), x_type="date"
    )
    figure_layout["showlegend"] = True
    days = [x for trace in traces if trace["mode"] == "lines+markers" for x in trace["x"]]
    events_draw(figure_layout, events_within(chart_events(model), min(days), max(days)))
    return {"data": traces, "layout": figure_layout}, f"{title}: {'; '.join(summary)}."


@require_GET
@role_required(Role.VIEWER)
def compare_page(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    versions = list(
        ModelVersion.objects.filter(model=model)
        .order_by("created_at", "id")
        .values_list("version", flat=True)
    )
    try:
        query = compare_query(request, model, versions)
    except BadQuery as error:
        return bad_request(request, error)
    context = {
        "model": model,
        "query": query,
        "versions": versions,
        "all": ALL,
        "metrics": comparable_metrics(model),
        "segments": model_segments(model),
        "days_choices": COMPARE_DAYS,
    }
    if len(versions) < 2:
        return render(request, "dashboard/compare.html", context)
    now = timezone.now()
    start, end = query.span(now)
    try:
        comparison = comparison_report(
            model=model,
            metric=query.metric,
            baseline=query.baseline,
            candidate=query.candidate,
            start=start,
            end=end,
            segment=query.segment,
        )
    except MetricError as error:
        return bad_request(request, error)
    note = traffic_note(comparison.traffic)
    verdict = comparison_verdict(comparison)
    context.update(
        result=comparison,
        verdict=in_clause("Over all their traffic", verdict) if note else verdict,
        start=start,
        shown=shown_numbers(comparison),
        traffic_note=note,
    )
    estimate = compare_estimates(
        model=model,
        metric=query.metric,
        baseline=query.baseline,
        candidate=query.candidate,
        start=start,
        end=end,
        segment=query.segment,
        now=now,
    )
    if estimate and estimate["judged_on_estimate"]:  # the estimate leads; the outcomes follow
        context["verdict"] = in_clause("On the outcomes in so far", context["verdict"])
    context["estimate"] = estimate
    if comparison.shared is not None:
        context.update(
            shared=comparison.shared,
            shared_verdict=in_clause(
                "On the traffic they shared", comparison_verdict(comparison.shared)
            ),
            shared_shown=shown_numbers(comparison.shared),
        )
    trend = trend_figure(model, query, now)
    if trend:
        figure, summary = trend
        context["trend"] = Chart("compare-trend", query.metric, summary, figure, summary)
    return render(request, "dashboard/compare.html", context)
