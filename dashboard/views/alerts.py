"""Alert pages: the list of open and recent alerts (critical first, bulk acknowledge), and one
alert explained (its rule, its evaluation history, its messages and their delivery, the chart
around it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Case, IntegerField, Value, When
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import Role, role_required, user_has_role
from dashboard.charts import BOUND, Marker, metric_figure, plain
from dashboard.params import BadQuery, bad_request
from dashboard.sections.base import Chart
from dashboard.sections.model import chart_summary, metric_text
from factory.models import MLModel
from monitoring.alerts.judge import series
from monitoring.alerts.links import (
    ACKNOWLEDGE,
    SILENCE_HOURS,
    ActionLinkInvalid,
    action_read,
    alert_links,
)
from monitoring.alerts.messages import (
    alert_explanation,
    alert_summary,
    alert_title,
    direction_words,
    messages_told,
    rule_words,
)
from monitoring.alerts.services import alert_acknowledge, alerts_acknowledge, rule_silence
from monitoring.alerts.warnings import rule_warnings
from monitoring.metrics.explain_words import driver_lines
from monitoring.metrics.registry import metric_find, metric_label
from monitoring.metrics.windows import WINDOW, MetricError
from monitoring.models import Alert, AlertEvaluation, AlertState, Notification, Severity

ALERTS_PER_PAGE = 50
EVALUATIONS_PER_PAGE = 50
STATE_FILTERS = ("open", "pending", "firing", "resolved", "all")
CHART_WINDOWS = 30  # windows shown before the alert's latest window


def rank(field: str, order: list[str]) -> Case:
    """A sort key putting the field's values in this order (others last)."""
    whens = [When(**{field: value}, then=Value(i)) for i, value in enumerate(order)]
    return Case(*whens, default=Value(len(order)), output_field=IntegerField())


# What needs a person first: open before resolved, critical before warning, firing before
# pending; then the newest.
URGENCY = (
    rank("state", [AlertState.RESOLVED]).desc(),  # 0 for resolved, 1 for open ones
    rank("rule__severity", [Severity.CRITICAL, Severity.WARNING]).asc(),
    rank("state", [AlertState.FIRING, AlertState.PENDING]).asc(),
    "-started_at",
    "-id",
)


def alerts_filtered(*, model: str, state: str):
    alerts = Alert.objects.select_related("rule", "model").prefetch_related("notifications")
    if model:
        alerts = alerts.filter(model__name=model)
    if state == "open":
        alerts = alerts.exclude(state=AlertState.RESOLVED)
    elif state != "all":
        alerts = alerts.filter(state=state)
    return alerts.order_by(*URGENCY)


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
    now = timezone.now()
    for alert in page:
        alert.delivery = messages_told(list(alert.notifications.all()), now)
        alert.page_url = alert_links(alert).page
        alert.metric_label = metric_label(alert.rule.metric)
        alert.direction_words = direction_words(alert.direction)
        alert.silenced = alert.rule.is_silenced(now)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "model_name": model,
        "state": state,
        "states": STATE_FILTERS,
        "models": MLModel.objects.order_by("name").values_list("name", flat=True),
        "query": query.urlencode(),
        "can_edit": user_has_role(request.user, Role.EDITOR),
        "next": request.get_full_path(),
    }
    return render(request, "dashboard/alerts.html", context)


@require_POST
@role_required(Role.EDITOR)
def alerts_acknowledge_form(request):
    """Acknowledge the alerts ticked on the alerts page; back to the same list."""
    try:
        ids = [int(pk) for pk in request.POST.getlist("alert")]
    except ValueError:
        ids = [0]
    if not all(0 < pk < 2**31 for pk in ids):  # an id the database could not even compare
        return bad_request(request, BadQuery("alert must be alert ids"))
    if not ids:
        return bad_request(request, BadQuery("tick at least one alert to acknowledge"))
    done = alerts_acknowledge(alert_ids=ids, by=request.user.get_username())
    skipped = len(set(ids)) - done
    note = f" ({skipped} resolved or acknowledged already)" if skipped else ""
    messages.success(request, f"{done} alert{'s' if done != 1 else ''} acknowledged{note}.")
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, {request.get_host()}):
        return redirect(back)
    return redirect("dashboard:alerts")


@dataclass
class Delivery:
    state: str  # sent, retrying, failed, due, held
    text: str


def delivery_of(notification: Notification, now: datetime) -> Delivery:
    """Where a message stands, and when it was sent or is tried next."""
    state = notification.delivery_state(now)
    if state == "sent":
        return Delivery(state, f"sent {notification.sent_at:%Y-%m-%d %H:%M} UTC")
    if state == "failed":
        return Delivery(state, f"failed after {notification.attempts} attempts")
    if state == "retrying":
        retry = notification.claimed_until
        when = f"; next try after {retry:%Y-%m-%d %H:%M} UTC" if retry and retry > now else ""
        return Delivery(state, f"attempt {notification.attempts} failed, retrying{when}")
    if state == "held":
        until = notification.alert.rule.silenced_until
        return Delivery(state, f"held by the silence until {until:%Y-%m-%d %H:%M}")
    return Delivery(state, "waiting for the next sending run")


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
    # A pseudo-metric's rule counts (labels, say) while its chart shows the metric it reads
    # (their share): no common scale, so no bounds.
    common_scale = not getattr(metric_find(rule.metric), "reads", "")
    bounds = evaluation_bounds(evaluations) if common_scale else []
    if not bounds and common_scale:  # no evaluation in range: the alert's bounds
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


DEFAULT_SILENCE_HOURS = 4


@dataclass
class ActionRequest:
    """What an e-mail's link asks the alert page to confirm (or why it cannot)."""

    action: str = ""
    token: str = ""
    hours: int = DEFAULT_SILENCE_HOURS
    error: str = ""


def action_request(request, alert: Alert) -> ActionRequest | None:
    """The signed request an e-mail's link carries (`act`, and `hours` for a silence)."""
    token = request.GET.get("act", "")
    if not token:
        return None
    try:
        action = action_read(token, alert)
    except ActionLinkInvalid as error:
        return ActionRequest(error=str(error))
    hours = request.GET.get("hours", "")
    chosen = int(hours) if hours.isdigit() and int(hours) in SILENCE_HOURS else None
    return ActionRequest(action, token, chosen or DEFAULT_SILENCE_HOURS)


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
        notification.delivery = delivery_of(notification, now)
    answer = alert_explanation(alert)
    context = {
        "alert": alert,
        "rule": rule,
        "model": alert.model,
        "page": page,
        "title": alert_title(alert),
        "explanation": alert_summary(alert),
        "drivers": driver_lines(answer) if answer else [],
        "rule_words": rule_words(rule),
        "links": alert_links(alert),
        "notifications": notifications,
        "chart": alert_chart(alert, list(evaluations[:500])),
        "can_edit": user_has_role(request.user, Role.EDITOR),
        "silenced": rule.is_silenced(now),
        "query": "",
        "next": request.get_full_path(),
        "asked": action_request(request, alert),
        "silence_hours": SILENCE_HOURS,
    }
    return render(request, "dashboard/alert.html", context)


@require_POST
@role_required(Role.EDITOR)
def alert_act(request, name: str, pk: int):
    """Do what an e-mail's link asked, once the person confirmed it on the alert page."""
    alert = get_object_or_404(Alert.objects.select_related("rule"), model__name=name, pk=pk)
    try:
        action = action_read(request.POST.get("act", ""), alert)
    except ActionLinkInvalid as error:
        return bad_request(request, BadQuery(str(error)))
    by = request.user.get_username()
    if action == ACKNOWLEDGE:
        done = alert_acknowledge(alert=alert, by=by)
        note = "Acknowledged: no more reminders." if done else "Resolved already: nothing to do."
    else:
        hours = request.POST.get("hours", "")
        if not hours.isdigit() or int(hours) not in SILENCE_HOURS:
            return bad_request(request, BadQuery(f"hours must be one of {list(SILENCE_HOURS)}"))
        until = timezone.now() + timedelta(hours=int(hours))
        reason = request.POST.get("reason", "").strip()[:500] or f"silenced by {by} from an e-mail"
        rule_silence(rule=alert.rule, until=until, reason=reason)
        note = f"Rule #{alert.rule_id} silenced for {SILENCE_HOURS[int(hours)]}."
    messages.success(request, note)
    return redirect("dashboard:alert", name=name, pk=pk)


@require_POST
@role_required(Role.EDITOR)
def alert_silence_lift(request, name: str, pk: int):
    """Lift the silence of the alert's rule, as the API's DELETE on the silence does."""
    alert = get_object_or_404(Alert.objects.select_related("rule"), model__name=name, pk=pk)
    rule_silence(rule=alert.rule, until=None, reason="")
    return redirect("dashboard:alert", name=name, pk=pk)
