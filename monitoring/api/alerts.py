"""Alerts and what watches for them: rules, their evaluations, webhooks; acknowledge, silence."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey, Scope
from accounts.permissions import key_allows_model
from accounts.roles import Role
from config.problems import ApiProblem
from factory.api_base import ModelAPIView, model_get_or_404
from monitoring.alerts.services import (
    alert_acknowledge,
    alert_rule_create,
    alert_rule_update,
    rule_silence,
)
from monitoring.alerts.warnings import rule_warnings
from monitoring.api.serializers import (
    AcknowledgeSerializer,
    AlertRuleSerializer,
    AlertSerializer,
    EvaluationSerializer,
    SilenceSerializer,
    WebhookSerializer,
    model_errors_reported,
)
from monitoring.models import Alert, AlertEvaluation, AlertRule, AlertState, WebhookEndpoint


def rules_answer(rules: list[AlertRule]) -> list[dict]:
    warnings = {rule.pk: rule_warnings(rule=rule) for rule in rules}
    return AlertRuleSerializer(rules, many=True, context={"warnings": warnings}).data


def rule_answer(rule: AlertRule) -> dict:
    (body,) = rules_answer([rule])
    return body


class AlertListView(generics.ListAPIView):
    serializer_class = AlertSerializer
    pagination_class = None

    @extend_schema(
        parameters=[
            OpenApiParameter("model", str),
            OpenApiParameter("state", str, enum=["pending", "firing", "resolved", "all"]),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        alerts = Alert.objects.select_related("rule", "model").prefetch_related("notifications")
        name = self.request.query_params.get("model")
        if name:
            alerts = alerts.filter(model=model_get_or_404(name))
        if isinstance(self.request.auth, ApiKey):
            allowed = self.request.auth.limited_to.all()
            if allowed:
                alerts = alerts.filter(model__in=allowed)
        state = self.request.query_params.get("state", "all")
        if state not in (*AlertState.values, "all"):
            raise ApiProblem(400, "state must be pending, firing, resolved or all")
        return alerts if state == "all" else alerts.filter(state=state)


class AlertRuleListView(ModelAPIView, generics.ListCreateAPIView):
    serializer_class = AlertRuleSerializer
    pagination_class = None
    scopes = {"POST": Scope.FACTORY_WRITE}
    roles = {"POST": Role.EDITOR}

    def get_queryset(self):
        return AlertRule.objects.filter(model=self.model)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "model": self.model}

    def list(self, request, *args, **kwargs):
        return Response(rules_answer(list(self.get_queryset())))

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with model_errors_reported():
            rule = alert_rule_create(model=self.model, **serializer.validated_data)
        return Response(rule_answer(rule), status=status.HTTP_201_CREATED)


class AlertRuleDetailView(ModelAPIView, generics.RetrieveUpdateDestroyAPIView):
    serializer_class = AlertRuleSerializer
    scopes = {"PATCH": Scope.FACTORY_WRITE, "PUT": Scope.FACTORY_WRITE}
    roles = {"PATCH": Role.EDITOR, "DELETE": Role.EDITOR}
    http_method_names = ["get", "patch", "delete"]

    def get_object(self):
        return get_object_or_404(AlertRule, model=self.model, pk=self.kwargs["pk"])

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "model": self.model}

    def retrieve(self, request, *args, **kwargs):
        return Response(rule_answer(self.get_object()))

    def update(self, request, *args, **kwargs):
        rule = self.get_object()
        serializer = self.get_serializer(rule, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        with model_errors_reported():
            rule = alert_rule_update(rule=rule, **serializer.validated_data)
        return Response(rule_answer(rule))


def alert_or_404(request, pk: int) -> Alert:
    alert = Alert.objects.select_related("rule", "model").filter(pk=pk).first()
    if alert is None or (
        isinstance(request.auth, ApiKey) and not key_allows_model(request.auth, alert.model.name)
    ):
        raise ApiProblem(404, f"There is no alert {pk}.")
    return alert


# Acknowledge an open alert: it stays open, but no more reminders are sent.
class AlertAcknowledgeView(APIView):
    roles = {"POST": Role.EDITOR}
    scopes = {"POST": Scope.FACTORY_WRITE}

    @extend_schema(request=AcknowledgeSerializer, responses=AlertSerializer)
    def post(self, request, pk):
        alert = alert_or_404(request, pk)
        body = AcknowledgeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        by = body.validated_data["by"] or getattr(request.auth, "name", "") or str(request.user)
        if not alert_acknowledge(alert=alert, by=by):
            raise ApiProblem(409, f"Alert {pk} is resolved; there is nothing to acknowledge.")
        return alert_response(pk)


# Silence the alert's rule until a time, with a reason: evaluations go on, messages wait.
class AlertSilenceView(APIView):
    roles = {"POST": Role.EDITOR, "DELETE": Role.EDITOR}
    scopes = {"POST": Scope.FACTORY_WRITE, "DELETE": Scope.FACTORY_WRITE}

    @extend_schema(request=SilenceSerializer, responses=AlertRuleSerializer)
    def post(self, request, pk):
        alert = alert_or_404(request, pk)
        body = SilenceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        until = body.validated_data["until"]
        if until <= timezone.now():
            raise ApiProblem(
                400,
                "until must be in the future",
                [{"field": "until", "message": "must be in the future"}],
            )
        rule = rule_silence(rule=alert.rule, until=until, reason=body.validated_data["reason"])
        return Response(rule_answer(rule))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, pk):
        alert = alert_or_404(request, pk)
        rule_silence(rule=alert.rule, until=None, reason="")
        return Response(status=status.HTTP_204_NO_CONTENT)


def alert_response(pk: int) -> Response:
    alert = Alert.objects.select_related("rule", "model").prefetch_related("notifications")
    return Response(AlertSerializer(alert.get(pk=pk)).data)


class AlertEvaluationListView(ModelAPIView, generics.ListAPIView):
    """The latest evaluations of one rule, newest first (the rule's audit trail)."""

    serializer_class = EvaluationSerializer
    pagination_class = None
    limit = 200

    def get_queryset(self):
        rule = get_object_or_404(AlertRule, model=self.model, pk=self.kwargs["pk"])
        return AlertEvaluation.objects.filter(rule=rule)[: self.limit]


# The model's channels beside e-mail (webhook, Slack, PagerDuty); every alert notification
# is also told to each.
class WebhookListView(ModelAPIView, generics.ListCreateAPIView):
    roles = {"POST": Role.ADMIN}
    serializer_class = WebhookSerializer
    pagination_class = None
    scopes = {"POST": Scope.FACTORY_WRITE}

    def get_queryset(self):
        return WebhookEndpoint.objects.filter(model=self.model)

    def perform_create(self, serializer):
        channel = WebhookEndpoint(model=self.model, **serializer.validated_data)
        if WebhookEndpoint.objects.filter(
            model=self.model, kind=channel.kind, url=channel.url, routing_key=channel.routing_key
        ):
            raise ApiProblem(409, "This channel is already set up for the model.")
        serializer.save(model=self.model)


class WebhookDetailView(ModelAPIView, generics.DestroyAPIView):
    roles = {"DELETE": Role.ADMIN}
    serializer_class = WebhookSerializer
    scopes = {"DELETE": Scope.FACTORY_WRITE}

    def get_object(self):
        return get_object_or_404(WebhookEndpoint, model=self.model, pk=self.kwargs["pk"])
