"""The public HTTP API v1 (contract: docs/api.md). Views parse and answer; services work."""

from __future__ import annotations

import io
import uuid
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey, Scope
from accounts.permissions import key_allows_model
from accounts.roles import Role
from accounts.throttling import KeyRateThrottle
from config.problems import ApiProblem
from factory.api import request_actor
from factory.models import MLModel, Rollout
from factory.serializers import RolloutSerializer
from factory.services import model_create
from monitoring.alerts.defaults import alert_rules_default_create
from monitoring.alerts.services import alert_acknowledge, rule_silence
from monitoring.api.serializers import (
    AcknowledgeSerializer,
    AlertRuleSerializer,
    AlertSerializer,
    ComparisonSerializer,
    DriftSerializer,
    EvaluationSerializer,
    ModelCreateSerializer,
    ModelSerializer,
    ModelUpdateSerializer,
    QuarantinedRecordSerializer,
    ReceiptSerializer,
    ResubmissionSerializer,
    SensitivitySerializer,
    SilenceSerializer,
    WebhookSerializer,
)
from monitoring.ingest.parsers import (
    MEDIA_TYPES,
    BodyError,
    BodyTooLarge,
    LimitedBody,
    RecordLimitExceeded,
    parse_stream,
    records_capped,
)
from monitoring.ingest.quarantine import (
    AlreadyResolved,
    quarantine_csv,
    quarantine_list,
    quarantine_ndjson,
    quarantined_resubmit,
)
from monitoring.ingest.services import records_ingest
from monitoring.metrics.drift import DriftError, drift_settings_set
from monitoring.metrics.drift_report import drift_report
from monitoring.metrics.registry import metric_description
from monitoring.metrics.reports import comparison_report, sensitivity_report
from monitoring.metrics.selectors import models_with_health
from monitoring.metrics.series import metric_series
from monitoring.metrics.windows import MetricError
from monitoring.models import (
    Alert,
    AlertEvaluation,
    AlertRule,
    AlertState,
    QuarantinedRecord,
    RecordKind,
    WebhookEndpoint,
)


def model_or_404(name: str) -> MLModel:
    model = MLModel.objects.filter(name=name).first()
    if model is None:
        raise ApiProblem(404, f"There is no model named {name!r}.")
    return model


def query_time(request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ApiProblem(400, f"{name} {text!r} is not an RFC 3339 timestamp") from None
    if value.tzinfo is None:
        raise ApiProblem(400, f"{name} {text!r} has no UTC offset (add Z or +00:00)")
    return value


class ModelListView(APIView):
    scopes = {"POST": Scope.FACTORY_WRITE}

    @extend_schema(responses=ModelSerializer(many=True))
    def get(self, request):
        models = MLModel.objects.prefetch_related("versions")
        if isinstance(request.auth, ApiKey):
            models = [m for m in models if key_allows_model(request.auth, m.name)]
        return Response(ModelSerializer(models_with_health(models), many=True).data)

    @extend_schema(request=ModelCreateSerializer, responses={201: ModelSerializer})
    def post(self, request):
        serializer = ModelCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if MLModel.objects.filter(name=serializer.validated_data["name"]).exists():
            raise ApiProblem(409, f"A model named {serializer.validated_data['name']!r} exists.")
        try:
            with transaction.atomic():
                model = model_create(**serializer.validated_data, actor=request_actor(request))
                alert_rules_default_create(model=model)
        except IntegrityError:
            raise ApiProblem(409, "A model with this name exists.") from None
        (model,) = models_with_health([model])
        return Response(ModelSerializer(model).data, status=status.HTTP_201_CREATED)


class ModelDetailView(APIView):
    scopes = {"PATCH": Scope.FACTORY_WRITE}
    roles = {"PATCH": Role.EDITOR}

    @extend_schema(responses=ModelSerializer)
    def get(self, request, model):
        (model,) = models_with_health([model_or_404(model)])
        body = ModelSerializer(model).data
        history = Rollout.objects.filter(model=model).select_related("version")
        body["rollouts"] = RolloutSerializer(history, many=True).data
        open_alerts = Alert.objects.filter(model=model).exclude(state=AlertState.RESOLVED)
        body["open_alerts"] = AlertSerializer(
            open_alerts.select_related("rule", "model").prefetch_related("notifications"),
            many=True,
        ).data
        return Response(body)

    @extend_schema(request=ModelUpdateSerializer, responses=ModelSerializer)
    def patch(self, request, model):
        """Change a model's drift overrides (method and threshold per feature or kind)."""
        found = model_or_404(model)
        serializer = ModelUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        settings = serializer.validated_data.get("drift_settings")
        if settings is not None:
            drift_settings_set(model=found, settings=settings, actor=request_actor(request))
        return self.get(request, model)


class IngestView(APIView):
    kind = RecordKind.PREDICTIONS
    parser_classes = []  # the body is streamed by parse_stream, by content type
    throttle_classes = [KeyRateThrottle]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=ReceiptSerializer)
    def post(self, request, model):
        model = model_or_404(model)
        media_type = (request.content_type or "").split(";")[0].strip().lower()
        if media_type not in MEDIA_TYPES:
            accepted = ", ".join(MEDIA_TYPES)
            raise ApiProblem(
                415, f"Content-Type {media_type or '(none)'!r} is not one of {accepted}"
            )
        limit_mb = settings.CANARY_MAX_UPLOAD_MB
        too_large = f"The body is over the limit of {limit_mb} MB."
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit_mb * 1024 * 1024:
            raise ApiProblem(413, too_large)
        body = io.BufferedReader(LimitedBody(request._request, limit_mb * 1024 * 1024), 1 << 20)
        max_records = settings.CANARY_MAX_RECORDS
        records = records_capped(parse_stream(body, media_type, self.kind), max_records)
        try:
            receipt = records_ingest(
                model=model,
                kind=self.kind,
                records=records,
                content_type=media_type,
                source=getattr(request.auth, "name", ""),
            )
        except BodyError as error:
            raise ApiProblem(400, f"The body cannot be read: {error}.") from None
        except BodyTooLarge:
            raise ApiProblem(413, too_large) from None
        except RecordLimitExceeded:
            raise ApiProblem(
                413, f"More than {max_records} records in one request; split it."
            ) from None
        return Response(receipt.as_dict())


class PredictionIngestView(IngestView):
    kind = RecordKind.PREDICTIONS
    scopes = {"POST": Scope.PREDICTIONS_WRITE}


class OutcomeIngestView(IngestView):
    kind = RecordKind.OUTCOMES
    scopes = {"POST": Scope.OUTCOMES_WRITE}


QUARANTINE_FILTERS = [
    OpenApiParameter("kind", str, enum=list(RecordKind.values)),
    OpenApiParameter("code", str, description="required, invalid or conflict"),
    OpenApiParameter("batch_id", OpenApiTypes.UUID, description="the batch_id of a receipt"),
    OpenApiParameter("prediction_id", str),
    OpenApiParameter("resolved", str, enum=["false", "true", "all"], description="default false"),
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="quarantined at or after"),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="quarantined before"),
]
RESOLVED_FILTER = {"false": False, "true": True, "all": None}


def quarantine_filtered(request, model_name: str):
    params = request.query_params
    kind = params.get("kind") or None
    if kind and kind not in RecordKind.values:
        raise ApiProblem(400, "kind must be predictions or outcomes")
    resolved = params.get("resolved", "false")
    if resolved not in RESOLVED_FILTER:
        raise ApiProblem(400, "resolved must be false, true or all")
    batch_id = params.get("batch_id") or None
    if batch_id:
        try:
            uuid.UUID(batch_id)
        except ValueError:
            raise ApiProblem(400, f"batch_id {batch_id[:60]!r} is not a batch id") from None
    return quarantine_list(
        model=model_or_404(model_name),
        kind=kind,
        code=params.get("code") or None,
        batch_id=batch_id,
        prediction_id=params.get("prediction_id") or None,
        resolved=RESOLVED_FILTER[resolved],
        start=query_time(request, "start"),
        end=query_time(request, "end"),
    )


class QuarantinePagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


class QuarantineListView(generics.ListAPIView):
    """Rejected records of a model, newest first, with their reasons and raw content."""

    serializer_class = QuarantinedRecordSerializer
    pagination_class = QuarantinePagination

    @extend_schema(parameters=QUARANTINE_FILTERS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return quarantine_filtered(self.request, self.kwargs["model"])


class QuarantineDownloadView(APIView):
    """The same records as a file: CSV or NDJSON, streamed."""

    media_type = "text/csv"

    @extend_schema(parameters=QUARANTINE_FILTERS, responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, model):
        records = quarantine_filtered(request, model)
        if self.media_type == "text/csv":
            lines, suffix = quarantine_csv(records), "csv"
        else:
            lines, suffix = quarantine_ndjson(records), "ndjson"
        response = StreamingHttpResponse(lines, content_type=f"{self.media_type}; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{model}-quarantine.{suffix}"'
        return response


class QuarantineNdjsonView(QuarantineDownloadView):
    media_type = "application/x-ndjson"

    @extend_schema(
        parameters=QUARANTINE_FILTERS,
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR},
    )
    def get(self, request, model):
        return super().get(request, model)


class QuarantineResubmitView(APIView):
    """Send a corrected record in place of a quarantined one; it resolves it once stored."""

    @property
    def scopes(self) -> dict:
        kind = (
            QuarantinedRecord.objects.filter(pk=self.kwargs.get("pk"))
            .values_list("kind", flat=True)
            .first()
        )
        write = Scope.OUTCOMES_WRITE if kind == RecordKind.OUTCOMES else Scope.PREDICTIONS_WRITE
        return {"POST": write}

    @extend_schema(request=OpenApiTypes.OBJECT, responses=ResubmissionSerializer)
    def post(self, request, model, pk):
        quarantined = get_object_or_404(QuarantinedRecord, model=model_or_404(model), pk=pk)
        record = request.data
        if not isinstance(record, dict):
            raise ApiProblem(400, "The body must be the corrected record, a JSON object.")
        try:
            result = quarantined_resubmit(
                quarantined=quarantined, record=record, source=getattr(request.auth, "name", "")
            )
        except AlreadyResolved:
            raise ApiProblem(409, f"Quarantined record {pk} is already resolved.") from None
        return Response({**result.receipt.as_dict(), "resolved": result.resolved})


METRIC_PARAMETER = OpenApiParameter("metric", str, required=True, description=metric_description())


class MetricsView(APIView):
    @extend_schema(
        parameters=[
            METRIC_PARAMETER,
            OpenApiParameter("start", OpenApiTypes.DATETIME),
            OpenApiParameter("end", OpenApiTypes.DATETIME),
            OpenApiParameter("granularity", str, enum=["hour", "day", "week"]),
            OpenApiParameter("version", str),
            OpenApiParameter("segment", str),
        ],
        responses=OpenApiTypes.OBJECT,
    )
    def get(self, request, model):
        model = model_or_404(model)
        metric = request.query_params.get("metric")
        if not metric:
            raise ApiProblem(400, "The metric parameter is required, e.g. ?metric=accuracy.")
        granularity = request.query_params.get("granularity", "day")
        try:
            points = metric_series(
                model=model,
                metric=metric,
                granularity=granularity,
                start=query_time(request, "start"),
                end=query_time(request, "end"),
                version=request.query_params.get("version") or None,
                segment=request.query_params.get("segment"),
            )
        except MetricError as error:
            raise ApiProblem(400, str(error)) from None
        return Response(
            {
                "model": model.name,
                "metric": metric,
                "granularity": granularity,
                "points": [p.as_dict() for p in points],
            }
        )


def query_float(request, name: str, default: float, low: float, high: float) -> float:
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ApiProblem(400, f"{name} {text!r} is not a number") from None
    if not low < value < high:
        raise ApiProblem(400, f"{name} must be between {low} and {high} (exclusive), not {text}")
    return value


def required(request, name: str, example: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise ApiProblem(400, f"The {name} parameter is required, e.g. ?{name}={example}.")
    return value


WINDOW_PARAMETERS = [
    OpenApiParameter("start", OpenApiTypes.DATETIME),
    OpenApiParameter("end", OpenApiTypes.DATETIME),
]


class DriftView(APIView):
    @extend_schema(
        parameters=[
            *WINDOW_PARAMETERS,
            OpenApiParameter("reference_start", OpenApiTypes.DATETIME),
            OpenApiParameter("reference_end", OpenApiTypes.DATETIME),
            OpenApiParameter("version", str, description="default: the latest version"),
            OpenApiParameter("segment", str),
        ],
        responses=DriftSerializer,
    )
    def get(self, request, model):
        model = model_or_404(model)
        try:
            body = drift_report(
                model=model,
                start=query_time(request, "start"),
                end=query_time(request, "end"),
                reference_start=query_time(request, "reference_start"),
                reference_end=query_time(request, "reference_end"),
                version=request.query_params.get("version") or None,
                segment=request.query_params.get("segment"),
            )
        except DriftError as error:
            raise ApiProblem(400, str(error)) from None
        return Response(DriftSerializer(body).data)


class CompareView(APIView):
    @extend_schema(
        parameters=[
            METRIC_PARAMETER,
            OpenApiParameter("baseline", str, required=True),
            OpenApiParameter("candidate", str, required=True),
            *WINDOW_PARAMETERS,
            OpenApiParameter("segment", str),
            OpenApiParameter("alpha", float),
            OpenApiParameter("power", float),
        ],
        responses=ComparisonSerializer,
    )
    def get(self, request, model):
        model = model_or_404(model)
        try:
            body = comparison_report(
                model=model,
                metric=required(request, "metric", "accuracy"),
                baseline=required(request, "baseline", "1.0.0"),
                candidate=required(request, "candidate", "1.1.0"),
                start=query_time(request, "start"),
                end=query_time(request, "end"),
                segment=request.query_params.get("segment"),
                alpha=query_float(request, "alpha", 0.05, 0, 1),
                power=query_float(request, "power", 0.8, 0, 1),
            )
        except MetricError as error:
            raise ApiProblem(400, str(error)) from None
        return Response(ComparisonSerializer(body).data)


class SensitivityView(APIView):
    @extend_schema(
        parameters=[
            METRIC_PARAMETER,
            OpenApiParameter("granularity", str, enum=["hour", "day", "week"]),
            OpenApiParameter("alpha", float),
            OpenApiParameter("power", float),
            *WINDOW_PARAMETERS,
            OpenApiParameter("version", str),
            OpenApiParameter("segment", str),
        ],
        responses=SensitivitySerializer,
    )
    def get(self, request, model):
        model = model_or_404(model)
        try:
            body = sensitivity_report(
                model=model,
                metric=required(request, "metric", "accuracy"),
                granularity=request.query_params.get("granularity", "day"),
                alpha=query_float(request, "alpha", 0.05, 0, 1),
                power=query_float(request, "power", 0.8, 0, 1),
                start=query_time(request, "start"),
                end=query_time(request, "end"),
                version=request.query_params.get("version") or None,
                segment=request.query_params.get("segment"),
            )
        except MetricError as error:
            raise ApiProblem(400, str(error)) from None
        return Response(SensitivitySerializer(body).data)


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
            alerts = alerts.filter(model=model_or_404(name))
        if isinstance(self.request.auth, ApiKey):
            allowed = self.request.auth.limited_to.all()
            if allowed:
                alerts = alerts.filter(model__in=allowed)
        state = self.request.query_params.get("state", "all")
        if state not in (*AlertState.values, "all"):
            raise ApiProblem(400, "state must be pending, firing, resolved or all")
        return alerts if state == "all" else alerts.filter(state=state)


class AlertRuleListView(generics.ListCreateAPIView):
    serializer_class = AlertRuleSerializer
    pagination_class = None
    scopes = {"POST": Scope.FACTORY_WRITE}
    roles = {"POST": Role.EDITOR}

    def get_model(self) -> MLModel:
        return model_or_404(self.kwargs["model"])

    def get_queryset(self):
        return AlertRule.objects.filter(model=self.get_model())

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "model": self.get_model()}

    def perform_create(self, serializer):
        serializer.save(model=self.get_model())


class AlertRuleDetailView(generics.RetrieveUpdateDestroyAPIView):
    serializer_class = AlertRuleSerializer
    scopes = {"PATCH": Scope.FACTORY_WRITE, "PUT": Scope.FACTORY_WRITE}
    roles = {"PATCH": Role.EDITOR, "DELETE": Role.EDITOR}
    http_method_names = ["get", "patch", "delete"]

    def get_object(self):
        return get_object_or_404(
            AlertRule, model=model_or_404(self.kwargs["model"]), pk=self.kwargs["pk"]
        )

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "model": model_or_404(self.kwargs["model"])}


def alert_or_404(request, pk: int) -> Alert:
    alert = Alert.objects.select_related("rule", "model").filter(pk=pk).first()
    if alert is None or (
        isinstance(request.auth, ApiKey) and not key_allows_model(request.auth, alert.model.name)
    ):
        raise ApiProblem(404, f"There is no alert {pk}.")
    return alert


class AlertAcknowledgeView(APIView):
    roles = {"POST": Role.EDITOR}
    """Acknowledge an open alert: it stays open, but no more reminders are sent."""

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


class AlertSilenceView(APIView):
    roles = {"POST": Role.EDITOR, "DELETE": Role.EDITOR}
    """Silence the alert's rule until a time, with a reason: evaluations go on, messages wait."""

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
        return Response(AlertRuleSerializer(rule, context={"model": rule.model}).data)

    @extend_schema(request=None, responses=AlertRuleSerializer)
    def delete(self, request, pk):
        alert = alert_or_404(request, pk)
        rule = rule_silence(rule=alert.rule, until=None, reason="")
        return Response(AlertRuleSerializer(rule, context={"model": rule.model}).data)


def alert_response(pk: int) -> Response:
    alert = Alert.objects.select_related("rule", "model").prefetch_related("notifications")
    return Response(AlertSerializer(alert.get(pk=pk)).data)


class AlertEvaluationListView(generics.ListAPIView):
    """The latest evaluations of one rule, newest first (the rule's audit trail)."""

    serializer_class = EvaluationSerializer
    pagination_class = None
    limit = 200

    def get_queryset(self):
        rule = get_object_or_404(
            AlertRule, model=model_or_404(self.kwargs["model"]), pk=self.kwargs["pk"]
        )
        return AlertEvaluation.objects.filter(rule=rule)[: self.limit]


class WebhookListView(generics.ListCreateAPIView):
    roles = {"POST": Role.ADMIN}
    """The model's webhook URLs; every alert notification is also POSTed to each."""

    serializer_class = WebhookSerializer
    pagination_class = None
    scopes = {"POST": Scope.FACTORY_WRITE}

    def get_queryset(self):
        return WebhookEndpoint.objects.filter(model=model_or_404(self.kwargs["model"]))

    def perform_create(self, serializer):
        model = model_or_404(self.kwargs["model"])
        if WebhookEndpoint.objects.filter(model=model, url=serializer.validated_data["url"]):
            raise ApiProblem(409, "This URL is already a webhook of the model.")
        serializer.save(model=model)


class WebhookDetailView(generics.DestroyAPIView):
    roles = {"DELETE": Role.ADMIN}
    serializer_class = WebhookSerializer
    scopes = {"DELETE": Scope.FACTORY_WRITE}

    def get_object(self):
        return get_object_or_404(
            WebhookEndpoint, model=model_or_404(self.kwargs["model"]), pk=self.kwargs["pk"]
        )
