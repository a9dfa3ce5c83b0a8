"""Models: the list with their health, one model with its rollouts and open alerts."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiKey, Scope
from accounts.permissions import key_allows_model, key_is_limited
from accounts.roles import Role
from config.problems import ApiProblem
from factory.api_base import ModelAPIView, request_actor
from factory.models import MLModel, Rollout
from factory.serializers import RolloutSerializer
from factory.services import model_create
from monitoring.alerts.defaults import alert_rules_default_create
from monitoring.api.serializers import (
    AlertSerializer,
    ModelCreateSerializer,
    ModelSerializer,
    ModelUpdateSerializer,
    MonitoringSerializer,
)
from monitoring.metrics.drift import drift_settings_set
from monitoring.metrics.estimates import estimation_reference_set
from monitoring.metrics.maturity import label_maturity_set
from monitoring.metrics.selectors import models_with_health
from monitoring.models import Alert, AlertState
from monitoring.pipeline.failures import monitoring_health_get


class ModelListView(APIView):
    scopes = {"POST": Scope.FACTORY_WRITE}
    roles = {"POST": Role.ADMIN}

    def check_permissions(self, request) -> None:
        super().check_permissions(request)
        auth = request.auth
        if request.method == "POST" and isinstance(auth, ApiKey) and key_is_limited(auth):
            self.permission_denied(
                request, message="This API key is limited to some models and may not create one."
            )

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


class ModelDetailView(ModelAPIView):
    scopes = {"PATCH": Scope.FACTORY_WRITE}
    roles = {"PATCH": Role.EDITOR}

    @extend_schema(responses=ModelSerializer)
    def get(self, request, **kwargs):
        (model,) = models_with_health([self.model])
        body = ModelSerializer(model).data
        history = Rollout.objects.filter(model=model).select_related("version")
        body["rollouts"] = RolloutSerializer(history, many=True).data
        open_alerts = Alert.objects.filter(model=model).exclude(state=AlertState.RESOLVED)
        body["open_alerts"] = AlertSerializer(
            open_alerts.select_related("rule", "model").prefetch_related("notifications"),
            many=True,
        ).data
        body["monitoring"] = MonitoringSerializer(monitoring_health_get(model_id=model.pk)).data
        return Response(body)

    @extend_schema(request=ModelUpdateSerializer, responses=ModelSerializer)
    def patch(self, request, **kwargs):
        """Change a model's drift overrides (method and threshold per feature or kind), the
        window that calibrates its estimated performance, and its label maturity threshold."""
        serializer = ModelUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        actor = request_actor(request)
        settings = serializer.validated_data.get("drift_settings")
        if settings is not None:
            drift_settings_set(model=self.model, settings=settings, actor=actor)
        if "estimation_reference" in serializer.validated_data:
            estimation_reference_set(
                model=self.model,
                window=serializer.validated_data["estimation_reference"],
                actor=actor,
            )
        threshold = serializer.validated_data.get("label_maturity")
        if threshold is not None:
            label_maturity_set(model=self.model, threshold=threshold, actor=actor)
        return self.get(request)
