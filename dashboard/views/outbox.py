"""The outbox: e-mails the embedded mode kept instead of sending, as their recipients would
read them (monitoring.alerts.transports.outbox)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.roles import Role, role_required
from dashboard.context import outbox
from monitoring.alerts.transports.outbox import outbox_readable
from monitoring.models import OutboxEmail

PER_PAGE = 50


@require_GET
@role_required(Role.VIEWER)
def outbox_page(request):
    emails = OutboxEmail.objects.defer("message")
    page = Paginator(emails, PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "query": "", **outbox(request), "keep": OutboxEmail.KEEP}
    return render(request, "dashboard/outbox.html", context)


@require_GET
@role_required(Role.VIEWER)
def outbox_email_page(request, pk: int):
    row = get_object_or_404(OutboxEmail, pk=pk)
    context = {"email": row, "readable": outbox_readable(row)}
    return render(request, "dashboard/outbox_email.html", context)
