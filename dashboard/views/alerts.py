"""Alert pages: the list of open and recent alerts, and one alert explained (its rule, its
evaluation history, its messages and their delivery, the chart around it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import Role, role_required, user_has_role
from dashboard.charts import BOUND, Marker, metric_figure, plain
from dashboard.params import BadQuery, bad_request
from dashboard.sections.base import Chart
from dashboard.sections.model import chart_summary, metric_text
from factory.models import MLModel
from monitoring.alerts.judge import series
from monitoring.alerts.notify import MAX_ATTEMPTS
from monitoring.alerts.services import rule_silence
from monitoring.alerts.warnings import rule_warnings
from monitoring.metrics.windows import WINDOW, MetricError
from monitoring.models import Alert, AlertEvaluation, AlertRule, AlertState, Notification, RuleKind

ALERTS_PER_PAGE = 50
EVALUATIONS_PER_PAGE = 50
STATE_FILTERS = ("open", "pending", "firing", "resolved", "all")
CHART_WINDOWS = 30  # windows shown before the alert's latest window


def alerts_filtered(*, model: str, state: str):
    alerts = Alert.objects.select_related("rule", "model").prefetch_related("notifications")
    if model:
        alerts = alerts.filter(model__name=model)
    if state == "open":
        return alerts.exclude(state=AlertState.RESOLVED)
    return alerts if state == "all" else alerts.filter(state=state)


@require_GET
@role_required(Role.VIEWER)
def alerts_page(request):
    model = request.GET.get("model", "").strip()
    state = request.GET.get("state") or "open"
    if state not in STATE_FILTERS:
        return bad_request(request, BadQuery(f"state must be one of {', '.join(STATE_FILTERS)}"))
    if model and not MLModel.objects.filter(name=model).exists():
        return bad_request(request, BadQuery(f"there is no model named {model!r}"))
    alerts = alerts_filtered(model=model, state=state)
    page = Paginator(alerts, ALERTS_PER_PAGE).get_page(request.GET.get("page"))
    for alert in page:
        alert.delivery = delivery_summary(list(alert.notifications.all()))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "model_name": model,
        "state": state,
        "states": STATE_FILTERS,
        "models": MLModel.objects.order_by("name").values_list("name", flat=True),
        "query": query.urlencode(),
    }
    return render(request, "dashboard/alerts.html", context)


@dataclass
class Delivery:
    state: str  # sent, retrying, failed, due, held
    text: str


def delivery_of(notification: Notification, rule: AlertRule, now: datetime) -> Delivery:
    """Where a message stands: sent, failed for good, retrying, or still to be sent."""
    if notification.sent_at:
        return Delivery("sent", f"sent {notification.sent_at:%Y-%m-%d %H:%M} UTC")
    if notification.error and notification.attempts >= MAX_ATTEMPTS:
        return Delivery("failed", f"failed after {notification.attempts} attempts")
    if notification.error:
        retry = notification.claimed_until
        when = f"; next try after {retry:%Y-%m-%d %H:%M} UTC" if retry and retry > now else ""
        return Delivery("retrying", f"attempt {notification.attempts} failed, retrying{when}")
    if rule.silenced_until and rule.silenced_until > now:
        return Delivery("held", f"held by the silence until {rule.silenced_until:%Y-%m-%d %H:%M}")
    return Delivery("due", "waiting for the next sending run")


def delivery_summary(notifications: list[Notification]) -> str:
    if not notifications:
        return "no message"
    sent = sum(1 for n in notifications if n.sent_at)
    failed = sum(1 for n in notifications if not n.sent_at and n.error)
    text = f"{sent} of {len(notifications)} sent"
    return text + (f", {failed} failing" if failed else "")


def bound_words(alert: Alert) -> str:
    if alert.direction == "too_low" and alert.lower is not None:
        return f"below its lower bound {alert.lower:.4g}"
    if alert.direction == "too_high" and alert.upper is not None:
        return f"above its upper bound {alert.upper:.4g}"
    if alert.direction == "no_data":
        return f"fewer than the {alert.rule.min_count} observations the rule expects"
    return "outside its bounds"


def alert_explanation(alert: Alert) -> str:
    """What happened, in one sentence a person on call can act on."""
    rule = alert.rule
    scope = []
    scope += [f"version {rule.version}"] if rule.version else []
    scope += [f"segment “{rule.segment}”"] if rule.segment is not None else []
    where = f" ({', '.join(scope)})" if scope else ""
    value = "no value" if alert.value is None else f"{alert.value:.4g}"
    text = (
        f"{rule.metric} of {alert.model.name}{where} was {value} over n = {alert.n:,} in the "
        f"{rule.granularity} from {alert.window_start:%Y-%m-%d %H:%M} to "
        f"{alert.window_end:%Y-%m-%d %H:%M} UTC, {bound_words(alert)}."
    )
    if alert.state == AlertState.RESOLVED and alert.resolved_at:
        return text + f" It was resolved at {alert.resolved_at:%Y-%m-%d %H:%M} UTC."
    return text + f" The alert has been {alert.state} since {alert.started_at:%Y-%m-%d %H:%M} UTC."


def rule_words(rule: AlertRule) -> str:
    if rule.kind == RuleKind.STATIC:
        bounds = [f"below {rule.lower:g}"] if rule.lower is not None else []
        bounds += [f"above {rule.upper:g}"] if rule.upper is not None else []
        return f"fires when {rule.metric} is {' or '.join(bounds)}"
    if rule.kind == RuleKind.BAND:
        return (
            f"fires when {rule.metric} leaves the mean of the last {rule.baseline_windows} "
            f"windows ± {rule.k:g} standard errors of the window ({rule.sides.replace('_', ' ')})"
        )
    if rule.kind == RuleKind.RELATIVE:
        baseline = (
            f"version {rule.baseline_version}"
            if rule.baseline_version
            else f"the mean of the last {rule.baseline_windows} windows"
        )
        return f"fires when {rule.metric} moves more than {rule.percent:g}% from {baseline}"
    return f"fires when a {rule.granularity} has fewer than {rule.min_count} {rule.metric}"


def evaluation_bounds(evaluations: list[AlertEvaluation]) -> list[dict]:
    """The bounds each judged window had, as dashed step lines (band bounds move)."""
    windows = {}
    for e in sorted(evaluations, key=lambda e: e.evaluated_at):
        if e.window_start is not None:
            windows[e.window_start] = e  # the latest judgement of each window
    traces = []
    for side in ("lower", "upper"):
        known = [
            (start, getattr(e, side))
            for start, e in sorted(windows.items())
            if getattr(e, side) is not None
        ]
        if known:
            traces.append(
                {
                    "type": "scatter",
                    "x": [s.isoformat() for s, _ in known],
                    "y": [v for _, v in known],
                    "mode": "lines",
                    "name": f"{side} bound",
                    "line": {"color": BOUND, "dash": "dash", "width": 1.5, "shape": "hv"},
                    "hovertemplate": f"{side} bound %{{y:.4g}}<extra></extra>",
                }
            )
    return traces


def alert_chart(alert: Alert, evaluations: list[AlertEvaluation]) -> Chart | None:
    """The rule's metric around the alert, with the bounds it was judged against."""
    rule = alert.rule
    step = WINDOW[rule.granularity]
    start = alert.window_start - step * CHART_WINDOWS
    end = min(timezone.now(), alert.window_end + step * CHART_WINDOWS)
    try:
        points = series(rule, start=start, now=max(end, alert.window_end))
    except MetricError:
        return None
    if not any(p.n for p in points):
        return None
    title, y_title = metric_text(rule.metric)
    title = plain(f"{title} per {rule.granularity}, rule #{rule.pk}")
    marker = Marker(alert.window_start.isoformat(), alert.value, f"alert {alert.state}")
    figure = metric_figure(
        title=title,
        points=points,
        y_title=plain(y_title),
        markers=[marker] if alert.value is not None else [],
    )
    # An outcomes rule counts labels, while its chart shows their share: no common scale.
    bounds = evaluation_bounds(evaluations) if rule.metric != "outcomes" else []
    if not bounds and rule.metric != "outcomes":  # no evaluation in range: the alert's bounds
        span = [points[0].start.isoformat(), points[-1].end.isoformat()]
        bounds = [
            {
                "type": "scatter",
                "x": span,
                "y": [b, b],
                "mode": "lines",
                "name": "bound",
                "line": {"color": BOUND, "dash": "dash", "width": 1.5},
            }
            for b in (alert.lower, alert.upper)
            if b is not None
        ]
    figure["data"] += bounds
    summary = chart_summary(title, points, rule.granularity)
    return Chart(f"alert-{alert.pk}-chart", rule.metric, title, figure, summary)


def model_chart_url(alert: Alert) -> str:
    """The model page's chart of the rule's metric, in the rule's window and scope."""
    rule = alert.rule
    query = {"granularity": rule.granularity}
    query.update({"version": rule.version} if rule.version else {})
    query.update({"segment": rule.segment} if rule.segment is not None else {})
    url = reverse("dashboard:model", kwargs={"name": alert.model.name})
    metric = "label_coverage" if rule.metric == "outcomes" else rule.metric
    return f"{url}?{urlencode({**query, 'metric': metric})}#metric-{metric}"


def alert_evaluations(alert: Alert):
    """The rule's evaluations while this alert lived, and the windows just before it opened."""
    rule = alert.rule
    lead = WINDOW[rule.granularity] * (rule.for_windows + 2)
    evaluations = AlertEvaluation.objects.filter(
        rule=rule, evaluated_at__gte=alert.started_at - lead
    )
    if alert.resolved_at:
        evaluations = evaluations.filter(evaluated_at__lte=alert.resolved_at + lead)
    return evaluations


@require_GET
@role_required(Role.VIEWER)
def alert_page(request, name: str, pk: int):
    alert = get_object_or_404(
        Alert.objects.select_related("rule", "model"), model__name=name, pk=pk
    )
    rule = alert.rule
    rule.warnings = rule_warnings(rule=rule)
    evaluations = alert_evaluations(alert)
    page = Paginator(evaluations, EVALUATIONS_PER_PAGE).get_page(request.GET.get("page"))
    now = timezone.now()
    notifications = list(alert.notifications.order_by("created_at", "id"))
    for notification in notifications:
        notification.delivery = delivery_of(notification, rule, now)
    context = {
        "alert": alert,
        "rule": rule,
        "model": alert.model,
        "page": page,
        "explanation": alert_explanation(alert),
        "rule_words": rule_words(rule),
        "notifications": notifications,
        "chart": alert_chart(alert, list(evaluations[:500])),
        "chart_url": model_chart_url(alert),
        "can_edit": user_has_role(request.user, Role.EDITOR),
        "silenced": rule.silenced_until is not None and rule.silenced_until > now,
        "query": "",
        "next": request.get_full_path(),
    }
    return render(request, "dashboard/alert.html", context)


@require_POST
@role_required(Role.EDITOR)
def alert_silence_lift(request, name: str, pk: int):
    """Lift the silence of the alert's rule, as the API's DELETE on the silence does."""
    alert = get_object_or_404(Alert.objects.select_related("rule"), model__name=name, pk=pk)
    rule_silence(rule=alert.rule, until=None, reason="")
    return redirect("dashboard:alert", name=name, pk=pk)
