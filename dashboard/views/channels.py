"""The model's channels beside e-mail: Slack, PagerDuty and plain webhooks, set up by admins."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.roles import Role, role_required, user_has_role
from factory.models import MLModel
from monitoring.alerts.services import channel_create
from monitoring.models import ChannelKind, WebhookEndpoint

# What each kind needs, in the words of the form's help.
KIND_HELP = {
    ChannelKind.SLACK: "The incoming-webhook URL Slack gives for a channel.",
    ChannelKind.PAGERDUTY: (
        "The Events API v2 URL and the integration key of a PagerDuty service: each alert opens "
        "an incident, acknowledging it here acknowledges the incident, resolving resolves it."
    ),
    ChannelKind.WEBHOOK: (
        "Any URL that accepts Canary's JSON: a Slack-compatible text and the alerts as data."
    ),
}


def masked(key: str) -> str:
    """Enough of an integration key to tell two apart, not enough to use it."""
    return f"…{key[-4:]}" if len(key) > 4 else "…"


@role_required(Role.VIEWER)
def channels_page(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    form = request.session.pop("channel_form", {"values": {"kind": "slack"}, "errors": {}})
    channels = [
        {"channel": c, "key": masked(c.routing_key) if c.routing_key else ""}
        for c in WebhookEndpoint.objects.filter(model=model)
    ]
    context = {
        "model": model,
        "channels": channels,
        "kinds": [(kind.value, kind.label, KIND_HELP[kind]) for kind in ChannelKind],
        "form": form,
        "can_edit": user_has_role(request.user, Role.ADMIN),
    }
    return render(request, "dashboard/channels.html", context)


@require_POST
@role_required(Role.ADMIN)
def channel_add(request, name: str):
    model = get_object_or_404(MLModel, name=name)
    values = {field: request.POST.get(field, "") for field in ("kind", "url", "routing_key")}
    try:
        channel = channel_create(model=model, **values)
    except ValidationError as error:
        values.pop("routing_key")  # a secret is not kept in the session to refill the form
        request.session["channel_form"] = {"values": values, "errors": error.message_dict}
        return redirect("dashboard:channels", name=name)
    messages.success(request, f"{channel.get_kind_display()} channel added.")
    return redirect("dashboard:channels", name=name)


@require_POST
@role_required(Role.ADMIN)
def channel_remove(request, name: str, pk: int):
    channel = get_object_or_404(WebhookEndpoint, model__name=name, pk=pk)
    channel.delete()
    messages.success(request, f"{channel.get_kind_display()} channel removed.")
    return redirect("dashboard:channels", name=name)
