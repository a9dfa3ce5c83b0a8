"""Server-rendered pages. Views parse GET/POST and answer; the selectors in
`dashboard.sections.model` and `monitoring.metrics.rows` decide what is shown."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import Role, role_required, user_has_role
from dashboard.params import BadQuery, bad_request, number_param, param, scope_from, time_param
from dashboard.sections.base import DAYS_CHOICES, model_first_hour
from dashboard.sections.model import (
    HEALTHS,
    model_page_get,
    overview_models,
)
from dashboard.sections.rows import rows_page_extras
from factory.models import MLModel
from monitoring.alerts.services import alert_acknowledge, alert_rule_create, rule_silence
from monitoring.api.serializers import AlertRuleSerializer
from monitoring.ingest.quarantine import quarantine_codes, quarantine_list
from monitoring.ingest.quarantine import quarantine_csv as quarantine_export
from monitoring.metrics import rows as row_exports
from monitoring.metrics.rows import RowFilter, RowFilterError, rows_removed_before, rows_select
from monitoring.metrics.slices import SliceError, slice_compare
from monitoring.metrics.windows import WINDOW, MetricError
from monitoring.models import Alert

ROWS_PER_PAGE = 50
DEFAULT_ROWS_SPAN = timedelta(days=1)


@require_GET
@role_required(Role.VIEWER)
def overview(request):
    health = request.GET.get("health", "")
    if health and health not in HEALTHS:
        return bad_request(request, BadQuery(f"health must be one of {', '.join(HEALTHS)}"))
    search = request.GET.get("q", "").strip()
    models = overview_models(search=search, health=health)
    context = {"models": models, "search": search, "health": health, "healths": HEALTHS}
    return render(request, "dashboard/overview.html", context)


@require_GET
@role_required(Role.VIEWER)
def model_page(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    try:
        scope = replace(scope_from(request), first=model_first_hour(model))
    except BadQuery as error:
        return bad_request(request, error)
    try:
        page = model_page_get(model=model, scope=scope)
    except MetricError as error:  # e.g. a version the model does not have
        return bad_request(request, error)
    context = {
        "page": page,
        "model": page.model,
        "can_edit": user_has_role(request.user, Role.EDITOR),
        "rule_form": request.session.pop("rule_form", None),
        "granularities": list(WINDOW),
        "days_choices": DAYS_CHOICES,
    }
    return render(request, "dashboard/model.html", context)


@require_POST
@role_required(Role.EDITOR)
def rule_create(request, name: str):
    """A static rule from the model page's form; the API's serializer parses it."""
    model = get_object_or_404(MLModel, name=name)
    fields = ("metric", "lower", "upper", "granularity", "min_count", "severity", "segment")
    data = {f: request.POST[f] for f in fields if request.POST.get(f, "") != ""}
    data["kind"] = "static"
    url = reverse("dashboard:model", kwargs={"name": model.name}) + "#rules"
    serializer = AlertRuleSerializer(data=data, context={"model": model})
    if not serializer.is_valid():
        return rule_refused(request, url, data, serializer.errors)
    try:
        rule = alert_rule_create(model=model, **serializer.validated_data)
    except ValidationError as error:
        return rule_refused(request, url, data, error.message_dict)
    request.session["rule_form"] = {"created": rule.pk}
    return redirect(url)


def rule_refused(request, url: str, data: dict, field_errors: dict):
    """Back to the model page, whose form shows what was sent and why it was refused."""
    errors = {f: [str(e) for e in errs] for f, errs in field_errors.items()}
    request.session["rule_form"] = {"values": data, "errors": errors}
    return redirect(url)


def row_filter_from(request) -> RowFilter:
    labelled = {"yes": True, "no": False, "": None, None: None}
    text = request.GET.get("labelled")
    if text not in labelled:
        raise BadQuery("labelled must be yes, no or empty")
    return RowFilter(
        start=time_param(request, "start"),
        end=time_param(request, "end"),
        version=request.GET.get("version") or None,
        segment=param(request, "segment"),
        labelled=labelled[text],
        feature=request.GET.get("feature", "").strip(),
        low=number_param(request, "min"),
        high=number_param(request, "max"),
        category=request.GET.get("category") or None,
    )


@require_GET
@role_required(Role.VIEWER)
def rows(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    if not request.GET:  # the tab itself: the last day, not a count over every row ever stored
        since = (timezone.now() - DEFAULT_ROWS_SPAN).replace(microsecond=0).isoformat()
        url = reverse("dashboard:rows", kwargs={"name": model.name})
        return redirect(f"{url}?{urlencode({'start': since})}")
    try:
        filters = row_filter_from(request)
        matching = rows_select(model=model, filters=filters)
    except (BadQuery, RowFilterError) as error:
        return bad_request(request, error)
    paginator = Paginator(matching, ROWS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "model": model,
        "filters": filters,
        "page": page,
        "query": query.urlencode(),
        "metric": request.GET.get("metric", ""),
        "removed_before": rows_removed_before(filters),
        "retention_days": settings.CANARY_RAW_RETENTION_DAYS,
    }
    context.update(slice_context(model, filters))
    context.update(rows_page_extras(model=model, filters=filters, metric=context["metric"]))
    return render(request, "dashboard/rows.html", context)


def slice_context(model: MLModel, filters: RowFilter) -> dict:
    """The slice against the reference (monitoring.metrics.slices), or why it cannot be compared."""
    rows = row_exports.rows_filtered(model=model, filters=filters)
    try:
        return {"comparison": slice_compare(model=model, rows=rows, version=filters.version)}
    except SliceError as error:
        return {"comparison_problem": str(error)}


@require_GET
@role_required(Role.VIEWER)
def rows_download(request, name: str, fmt: str):
    model = get_object_or_404(MLModel, name=name)
    try:
        matching = rows_select(model=model, filters=row_filter_from(request))
    except (BadQuery, RowFilterError) as error:
        return bad_request(request, error)
    if fmt == "parquet":
        body = row_exports.rows_parquet(matching)
        return download(body, "application/vnd.apache.parquet", f"{model.name}-rows.parquet")
    return download(row_exports.rows_csv(matching), "text/csv", f"{model.name}-rows.csv")


def download(chunks, content_type: str, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def quarantine_filters(request) -> tuple[str, str]:
    batch = request.GET.get("batch", "").strip()
    if batch:
        try:
            UUID(batch)
        except ValueError:
            raise BadQuery(f"batch {batch!r} is not a batch id (a UUID)") from None
    return batch, request.GET.get("code", "").strip()


def quarantine_request(request, name: str):
    """The model, the list's filters and the records they select (page and download alike):
    resolved or not, as the API's `resolved=all`."""
    model = get_object_or_404(MLModel, name=name)
    batch, code = quarantine_filters(request)
    records = quarantine_list(model=model, batch_id=batch, code=code, resolved=None)
    return model, batch, code, records


@require_GET
@role_required(Role.VIEWER)
def quarantine(request, name: str):
    try:
        model, batch, code, records = quarantine_request(request, name)
    except BadQuery as error:
        return bad_request(request, error)
    page = Paginator(records, ROWS_PER_PAGE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "model": model,
        "page": page,
        "batch": batch,
        "code": code,
        "query": query.urlencode(),
        "codes": quarantine_codes(model=model),
        "can_edit": user_has_role(request.user, Role.EDITOR),
    }
    return render(request, "dashboard/quarantine.html", context)


@require_GET
@role_required(Role.VIEWER)
def quarantine_csv(request, name: str):
    try:
        model, _, _, records = quarantine_request(request, name)
    except BadQuery as error:
        return bad_request(request, error)
    return download(quarantine_export(records), "text/csv", f"{model.name}-quarantine.csv")


@require_POST
@role_required(Role.EDITOR)
def alert_acknowledge_form(request, name: str, pk: int):
    alert = get_object_or_404(Alert, model__name=name, pk=pk)
    alert_acknowledge(alert=alert, by=request.user.get_username())
    return redirect_back(request, name)


@require_POST
@role_required(Role.EDITOR)
def alert_silence_form(request, name: str, pk: int):
    """Silence the alert's rule; `until` is read as UTC (the page shows UTC times)."""
    alert = get_object_or_404(Alert.objects.select_related("rule"), model__name=name, pk=pk)
    try:
        until = datetime.fromisoformat(request.POST.get("until", "")).replace(tzinfo=UTC)
    except ValueError:
        return bad_request(request, BadQuery("until must be a date and time"))
    reason = request.POST.get("reason", "").strip()[:500]
    if until <= timezone.now() or not reason:
        return bad_request(request, BadQuery("until must be in the future and a reason is given"))
    rule_silence(rule=alert.rule, until=until, reason=reason)
    return redirect_back(request, name)


def redirect_back(request, name: str):
    """To the page the form was on (the alert page), else to the model page."""
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, {request.get_host()}):
        return redirect(back)
    return redirect("dashboard:model", name=name)
