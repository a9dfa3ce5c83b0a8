"""The business page and its CSV: what each business value is worth (sections.business)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.roles import Role, role_required
from dashboard.params import BadQuery, bad_request, scope_from
from dashboard.sections.business import business_page_get, business_rows
from dashboard.views.model import download
from factory.models import MLModel
from monitoring.metrics import rows as row_exports

BUSINESS_COLUMNS = (
    "value",
    "window_start",
    "window_end",
    "average",
    "likely_low",
    "likely_high",
    "known_results",
)


def business_request(request, name: str):
    """The model, its business page and the window granularity the page asks for."""
    model = get_object_or_404(MLModel, name=name)
    granularity = scope_from(request, "week").granularity
    return model, business_page_get(model=model, granularity=granularity), granularity


@require_GET
@role_required(Role.VIEWER)
def business(request, name: str):
    try:
        model, page, granularity = business_request(request, name)
    except BadQuery as error:
        return bad_request(request, error)
    context = {"model": model, "page": page, "kpis": page.kpis, "granularity": granularity}
    return render(request, "dashboard/business.html", context)


@require_GET
@role_required(Role.VIEWER)
def business_csv(request, name: str):
    try:
        model, page, granularity = business_request(request, name)
    except BadQuery as error:
        return bad_request(request, error)
    lines = row_exports.csv_stream(BUSINESS_COLUMNS, business_rows(page.kpis))
    return download(lines, "text/csv", f"{model.name}-business-{granularity}.csv")
