"""The factory's HTTP API: versions, gates, rollouts, routing, audit, retrain requests."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts.models import Scope
from accounts.roles import Role
from config.problems import ApiProblem
from factory import rollouts as plans
from factory.api_base import ModelAPIView, request_actor
from factory.manifest import VersionRegisterSerializer
from factory.models import AuditEntry, MLModel, ModelVersion, RetrainRequest, Rollout
from factory.serializers import (
    AuditEntrySerializer,
    GatesSerializer,
    RetrainRequestSerializer,
    RetrainSettingsSerializer,
    RollbackSerializer,
    RolloutCreateSerializer,
    RolloutSerializer,
    VersionDetailSerializer,
    VersionSerializer,
)
from factory.services import VersionConflict, retrain_webhook_set, version_register

AUDIT_PAGE = 500


def version_or_404(model: MLModel, version: str) -> ModelVersion:
    row = ModelVersion.objects.filter(model=model, version=version).first()
    if row is None:
        raise ApiProblem(404, f"{model.name} has no version {version!r}.")
    return row


class VersionListView(ModelAPIView):
    roles = {"POST": Role.EDITOR}
    scopes = {"POST": Scope.FACTORY_WRITE}

    @extend_schema(responses=VersionSerializer(many=True))
    def get(self, request, **kwargs):
        versions = ModelVersion.objects.filter(model=self.model)
        return Response(VersionSerializer(versions, many=True).data)

    @extend_schema(
        request=VersionRegisterSerializer,
        responses={201: VersionDetailSerializer, 200: VersionDetailSerializer},
        description="Register a version's lineage (and reference). Immutable: the same body "
        "again answers 200, another body 409. A version first seen in prediction logs gets its "
        "lineage attached (201) and is immutable from then on.",
    )
    def post(self, request, **kwargs):
        model = self.model
        serializer = VersionRegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            registration = version_register(
                model=model, actor=request_actor(request), **serializer.validated_data
            )
        except VersionConflict as error:
            raise ApiProblem(409, str(error)) from None
        code = status.HTTP_201_CREATED if registration.created else status.HTTP_200_OK
        return Response(VersionDetailSerializer(registration.version).data, status=code)


class VersionDetailView(ModelAPIView):
    @extend_schema(responses=VersionDetailSerializer)
    def get(self, request, version, **kwargs):
        row = version_or_404(self.model, version)
        return Response(VersionDetailSerializer(row).data)


class GatesView(ModelAPIView):
    roles = {"PUT": Role.ADMIN}
    scopes = {"PUT": Scope.FACTORY_WRITE}

    @extend_schema(responses=GatesSerializer)
    def get(self, request, **kwargs):
        return Response(plans.gates_snapshot(self.model))

    @extend_schema(
        request=GatesSerializer,
        responses=GatesSerializer,
        description="Replace the promotion gates: minimum held-out metrics "
        "(lineage.validation.metrics) for canary (< 100% traffic) and production (100%).",
    )
    def put(self, request, **kwargs):
        model = self.model
        serializer = GatesSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        gates = plans.gates_set(
            model=model, gates=serializer.validated_data, actor=request_actor(request)
        )
        return Response(gates)


class RolloutListView(ModelAPIView):
    roles = {"POST": Role.ADMIN}
    scopes = {"POST": Scope.FACTORY_WRITE}

    @extend_schema(responses=RolloutSerializer(many=True))
    def get(self, request, **kwargs):
        history = Rollout.objects.filter(model=self.model).select_related("version")
        return Response(RolloutSerializer(history, many=True).data)

    @extend_schema(request=RolloutCreateSerializer, responses={201: RolloutSerializer})
    def post(self, request, **kwargs):
        model = self.model
        serializer = RolloutCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        version = ModelVersion.objects.filter(model=model, version=data.pop("version")).first()
        if version is None:
            raise ApiProblem(
                400,
                f"{model.name} has no version {request.data['version']!r}; register it first.",
                [{"field": "version", "message": "unknown version"}],
            )
        try:
            rollout = plans.rollout_create(
                model=model, version=version, actor=request_actor(request), **data
            )
        except plans.PromotionRefused as refused:
            raise ApiProblem(409, str(refused), refused.errors) from None
        return Response(RolloutSerializer(rollout).data, status=status.HTTP_201_CREATED)


class RollbackView(ModelAPIView):
    roles = {"POST": Role.ADMIN}
    scopes = {"POST": Scope.FACTORY_WRITE}

    @extend_schema(
        request=RollbackSerializer,
        responses={201: RolloutSerializer},
        description="Undo the latest active rollout: the plan becomes the previous one.",
    )
    def post(self, request, **kwargs):
        model = self.model
        serializer = RollbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            rollback = plans.rollout_rollback(
                model=model, actor=request_actor(request), **serializer.validated_data
            )
        except plans.NothingToRollBack as error:
            raise ApiProblem(409, str(error)) from None
        return Response(RolloutSerializer(rollback).data, status=status.HTTP_201_CREATED)


class RoutingView(ModelAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("segment", str, description="default: the empty segment"),
            OpenApiParameter(
                "prediction_id", str, description="required when the plan splits traffic"
            ),
        ],
        responses=OpenApiTypes.OBJECT,
        description="Which version serves this segment and prediction id: "
        '{"version", "parameters", "segment", "routes": [{"version", "share", "parameters"}]}.',
    )
    def get(self, request, **kwargs):
        model = self.model
        segment = request.query_params.get("segment", "")
        routes = plans.routes_for(plans.plan_current(model=model), segment)
        if not routes:
            raise ApiProblem(404, f"{model.name} has no rollout plan for segment {segment!r}.")
        prediction_id = request.query_params.get("prediction_id")
        if prediction_id is None and len(routes) > 1:
            raise ApiProblem(
                400,
                "prediction_id is required: this segment's traffic is split between versions.",
                [{"field": "prediction_id", "message": "required"}],
            )
        route = plans.route_pick(routes, plans.routing_fraction(segment, prediction_id or ""))
        return Response(
            {
                "version": route.version,
                "parameters": route.parameters,
                "segment": segment,
                "routes": [r.as_dict() for r in routes],
            }
        )


class AuditView(ModelAPIView):
    @extend_schema(responses=AuditEntrySerializer(many=True))
    def get(self, request, **kwargs):
        entries = AuditEntry.objects.filter(model=self.model)[:AUDIT_PAGE]
        return Response(AuditEntrySerializer(entries, many=True).data)


class RetrainRequestListView(ModelAPIView):
    @extend_schema(responses=RetrainRequestSerializer(many=True))
    def get(self, request, **kwargs):
        requests = RetrainRequest.objects.filter(model=self.model)
        requests = requests.select_related("version")
        return Response(RetrainRequestSerializer(requests, many=True).data)


class RetrainSettingsView(ModelAPIView):
    roles = {"PUT": Role.ADMIN}
    scopes = {"PUT": Scope.FACTORY_WRITE}

    @extend_schema(request=RetrainSettingsSerializer, responses=RetrainSettingsSerializer)
    def put(self, request, **kwargs):
        model = self.model
        serializer = RetrainSettingsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        url = serializer.validated_data["retrain_webhook_url"]
        retrain_webhook_set(model=model, url=url, actor=request_actor(request))
        return Response({"retrain_webhook_url": url})

    @extend_schema(responses=RetrainSettingsSerializer)
    def get(self, request, **kwargs):
        return Response({"retrain_webhook_url": self.model.retrain_webhook_url})
