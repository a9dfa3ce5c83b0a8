"""Making, editing and deleting an alert rule from the dashboard (editors). The API's serializer
parses the form, the rule services save it (the rule's own checks are AlertRule.clean()), and
the API's warning ("this rule will fire on noise") is shown on the form. The form shows only
the fields of the chosen kind, and asks `rule_check` as it is filled in: the rule's problems,
its minimum detectable effect and the noise warning, before anything is saved."""

from __future__ import annotations

import copy

from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.roles import Role, role_required
from dashboard.params import ALL
from dashboard.sections.base import model_segments, model_versions
from factory.models import MLModel
from monitoring.alerts.messages import rule_words
from monitoring.alerts.services import alert_rule_create, alert_rule_update
from monitoring.alerts.warnings import (
    noise_warnings,
    rule_sensitivity,
    rule_warnings,
    sensitivity_words,
)
from monitoring.api.serializers import AlertRuleSerializer
from monitoring.metrics.registry import estimate_keys, no_data_only_keys
from monitoring.metrics.series import metric_names
from monitoring.metrics.windows import WINDOW
from monitoring.models import AlertRule, Granularity, RuleKind, Severity, Sides

NULLABLE = ("lower", "upper", "percent", "k", "version", "segment", "baseline_version")
NUMBERS = ("lower", "upper", "percent", "k")
COUNTS = (
    "baseline_windows",
    "min_count",
    "for_windows",
    "resolve_windows",
    "cooldown_minutes",
    "repeat_minutes",
)
CHOICES = ("metric", "kind", "sides", "granularity", "severity")
# The fields only some kinds read; a field of another kind is cleared when the kind changes.
KIND_FIELDS = {
    "lower": (RuleKind.STATIC,),
    "upper": (RuleKind.STATIC,),
    "k": (RuleKind.BAND,),
    "percent": (RuleKind.RELATIVE,),
    "baseline_windows": (RuleKind.BAND, RuleKind.RELATIVE),
    "baseline_version": (RuleKind.RELATIVE,),
    "sides": (RuleKind.BAND, RuleKind.RELATIVE),
}
KIND_HELP = {
    RuleKind.STATIC: "Fires when the metric crosses a line you set.",
    RuleKind.BAND: "Fires when a window leaves the mean of the windows before it by more than "
    "k of its standard errors: the band widens where the data is thin.",
    RuleKind.RELATIVE: "Fires when the metric moves more than a percentage from the mean of "
    "the windows before it, or from another version in the same window.",
    RuleKind.NO_DATA: "Fires when a window has fewer predictions (or outcomes) than the minimum "
    "count: a silent feed.",
}


def form_data(post) -> dict:
    """The form's fields as the API's rule body: blank optional fields clear the value, and
    so do those another kind reads (a static rule turned band keeps no lower bound)."""
    data = {f: post[f] for f in (*CHOICES, *COUNTS) if post.get(f, "") != ""}
    for name in NULLABLE:
        if name not in post:
            continue
        blank = (ALL,) if name == "segment" else ("", ALL)
        data[name] = None if post[name] in blank else post[name]
    kind = post.get("kind", "")
    for name in NULLABLE:
        if kind in RuleKind.values and kind not in KIND_FIELDS.get(name, (kind,)):
            data[name] = None
    recipients = post.get("recipients", "")
    data["recipients"] = [r.strip() for r in recipients.replace(";", ",").split(",") if r.strip()]
    data["requests_retrain"] = post.get("requests_retrain") == "on"
    return data


def form_values(rule: AlertRule) -> dict:
    values = {f: getattr(rule, f) for f in (*CHOICES, *COUNTS, *NULLABLE)}
    values["recipients"] = ", ".join(rule.recipients or [])
    values["requests_retrain"] = rule.requests_retrain
    return values


def form_context(rule: AlertRule, values: dict, errors: dict | None = None) -> dict:
    metrics = metric_names(rule.model) + estimate_keys(rule.model.task) + no_data_only_keys()
    return {
        "model": rule.model,
        "rule": rule,
        "values": values,
        "errors": errors or {},
        "metrics": metrics,
        "kinds": [(kind, words, KIND_HELP[kind]) for kind, words in RuleKind.choices],
        "kind_help": KIND_HELP.get(values.get("kind"), ""),
        "kind_fields": {name: " ".join(kinds) for name, kinds in KIND_FIELDS.items()},
        "sides": Sides.choices,
        "severities": Severity.choices,
        "granularities": [(g, Granularity(g).label) for g in WINDOW],
        "versions": model_versions(rule.model),
        "segments": model_segments(rule.model),
        "all": ALL,
        "warnings": rule_warnings(rule=rule, labelled=True) if rule.pk and not errors else [],
    }


def form_refused(request, rule: AlertRule, data: dict, field_errors: dict) -> HttpResponse:
    """The form again, as sent, with the serializer's or the rule's reasons (400)."""
    errors = {f: [str(e) for e in errs] for f, errs in field_errors.items()}
    values = {**form_values(rule), **data, "recipients": request.POST.get("recipients", "")}
    context = form_context(rule, values, errors)
    return render(request, "dashboard/rule_edit.html", context, status=400)


@require_http_methods(["GET", "POST"])
@role_required(Role.EDITOR)
def rule_edit(request, name: str, pk: int):
    rule = get_object_or_404(AlertRule.objects.select_related("model"), model__name=name, pk=pk)
    if request.method == "GET":
        context = form_context(rule, form_values(rule))
        context["saved"] = request.session.pop("rule_saved", None) == rule.pk
        return render(request, "dashboard/rule_edit.html", context)
    data = form_data(request.POST)
    serializer = AlertRuleSerializer(rule, data=data, partial=True, context={"model": rule.model})
    if not serializer.is_valid():
        return form_refused(request, rule, data, serializer.errors)
    try:
        alert_rule_update(rule=rule, **serializer.validated_data)
    except ValidationError as error:
        return form_refused(request, rule, data, error.message_dict)
    request.session["rule_saved"] = rule.pk
    return redirect("dashboard:rule-edit", name=name, pk=pk)


@require_http_methods(["GET", "POST"])
@role_required(Role.EDITOR)
def rule_new(request, name: str):
    """A rule of any kind (the model page's own form makes static ones)."""
    model = get_object_or_404(MLModel, name=name)
    rule = AlertRule(model=model, kind=RuleKind.BAND)
    if request.method == "GET":
        return render(request, "dashboard/rule_edit.html", form_context(rule, form_values(rule)))
    data = form_data(request.POST)
    serializer = AlertRuleSerializer(data=data, context={"model": model})
    if not serializer.is_valid():
        return form_refused(request, rule, data, serializer.errors)
    try:
        created = alert_rule_create(model=model, **serializer.validated_data)
    except ValidationError as error:
        return form_refused(request, rule, data, error.message_dict)
    request.session["rule_saved"] = created.pk
    return redirect("dashboard:rule-edit", name=name, pk=created.pk)


@require_POST
@role_required(Role.EDITOR)
def rule_delete(request, name: str, pk: int):
    """Delete a rule with its alerts and evaluations (the model's history loses them)."""
    rule = get_object_or_404(AlertRule, model__name=name, pk=pk)
    rule.delete()
    request.session["rule_form"] = {"deleted": pk}
    return redirect(reverse("dashboard:model", kwargs={"name": name}) + "#rules")


def rule_draft(rule: AlertRule, data: dict) -> tuple[AlertRule, dict[str, list[str]]]:
    """The rule as the form would save it, unsaved, and what is wrong with it (by field)."""
    serializer = AlertRuleSerializer(rule, data=data, partial=True, context={"model": rule.model})
    if not serializer.is_valid():
        return rule, {f: [str(e) for e in errs] for f, errs in serializer.errors.items()}
    draft = copy.copy(rule)
    for name, value in serializer.validated_data.items():
        setattr(draft, name, value)
    try:
        draft.full_clean(exclude=["model"])
    except ValidationError as error:
        return draft, error.message_dict
    return draft, {}


@require_GET
@role_required(Role.EDITOR)
def rule_check(request, name: str, pk: int | None = None):
    """What the form's values would make, before saving (JSON, for the form's live note):
    the problems by field, else the rule in words, its minimum detectable effect and the
    noise warning."""
    if pk is None:
        rule = AlertRule(model=get_object_or_404(MLModel, name=name), kind=RuleKind.BAND)
    else:
        found = AlertRule.objects.select_related("model")
        rule = get_object_or_404(found, model__name=name, pk=pk)
    draft, errors = rule_draft(rule, form_data(request.GET))
    if errors:
        return JsonResponse({"errors": errors, "words": "", "sensitivity": "", "warnings": []})
    sensitivity = rule_sensitivity(draft)
    return JsonResponse(
        {
            "errors": {},
            "words": f"This rule {rule_words(draft)}.",
            "sensitivity": sensitivity_words(draft, sensitivity),
            "effect": sensitivity.effect if sensitivity else None,
            "reacts_to": sensitivity.reacts_to if sensitivity else None,
            "warnings": noise_warnings(draft, sensitivity, labelled=True),
        }
    )
