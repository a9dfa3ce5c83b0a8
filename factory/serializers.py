from __future__ import annotations

from rest_framework import serializers

from common.http import UnsafeUrl, outbound_url_check
from factory.models import (
    AuditEntry,
    MLModel,
    ModelVersion,
    RetrainRequest,
    Rollout,
    Task,
)


class ModelCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    task = serializers.ChoiceField(choices=Task.values)
    positive_class = serializers.JSONField(required=False, allow_null=True, default=None)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    owners = serializers.ListField(child=serializers.EmailField(), required=False, default=list)
    on_call = serializers.ListField(child=serializers.EmailField(), required=False, default=list)

    def validate_positive_class(self, value):
        if isinstance(value, (dict, list)):
            raise serializers.ValidationError("must be a number, string or boolean")
        return value


class VersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["version", "has_lineage", "lineage", "created_at"]


class ModelSerializer(serializers.ModelSerializer):
    versions = VersionSerializer(many=True, read_only=True)
    health = serializers.CharField(read_only=True)
    last_prediction_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = MLModel
        fields = [
            "name",
            "task",
            "positive_class",
            "description",
            "owners",
            "on_call",
            "health",
            "versions",
            "last_prediction_at",
            "created_at",
        ]


class VersionDetailSerializer(serializers.ModelSerializer):
    reference = serializers.JSONField()

    class Meta:
        model = ModelVersion
        fields = [
            "version",
            "has_lineage",
            "lineage",
            "reference",
            "body_sha256",
            "created_at",
            "registered_at",
        ]


class RolloutCreateSerializer(serializers.Serializer):
    version = serializers.CharField(max_length=100)
    traffic_percent = serializers.FloatField(min_value=0.01, max_value=100)
    segments = serializers.ListField(
        child=serializers.CharField(max_length=200, allow_blank=True), required=False, default=list
    )
    parameters = serializers.DictField(child=serializers.JSONField(), required=False, default=dict)
    note = serializers.CharField(required=False, allow_blank=True, default="")


class RollbackSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="")


class RolloutSerializer(serializers.ModelSerializer):
    version = serializers.CharField(source="version.version")
    undoes = serializers.IntegerField(source="undoes_id", allow_null=True)

    class Meta:
        model = Rollout
        fields = [
            "id",
            "kind",
            "version",
            "traffic_percent",
            "segments",
            "parameters",
            "note",
            "actor",
            "active",
            "undoes",
            "created_at",
        ]


class GatesSerializer(serializers.Serializer):
    canary = serializers.DictField(child=serializers.FloatField(), required=False, default=dict)
    production = serializers.DictField(child=serializers.FloatField(), required=False, default=dict)

    def validate_canary(self, gates: dict) -> dict:
        return gate_names_checked(gates)

    def validate_production(self, gates: dict) -> dict:
        return gate_names_checked(gates)


def gate_names_checked(gates: dict) -> dict:
    """Gates are named by metric: no name may hold a NUL, which no database stores."""
    if any("\x00" in name for name in gates):
        raise serializers.ValidationError("A metric name may not hold a NUL character.")
    return gates


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "actor", "action", "subject", "before", "after", "created_at"]


class RetrainRequestSerializer(serializers.ModelSerializer):
    version = serializers.CharField(source="version.version", allow_null=True, default=None)

    class Meta:
        model = RetrainRequest
        fields = [
            "id",
            "version",
            "alert_id",
            "rule_id",
            "metric",
            "value",
            "window_start",
            "window_end",
            "manifest",
            "status",
            "webhook_url",
            "attempts",
            "delivered_at",
            "error",
            "hooks_error",
            "created_at",
        ]


class RetrainSettingsSerializer(serializers.Serializer):
    retrain_webhook_url = serializers.URLField(allow_blank=True, max_length=500)

    def validate_retrain_webhook_url(self, url: str) -> str:
        return outbound_url_valid(url) if url else url


def outbound_url_valid(url: str) -> str:
    """A user's outbound URL, or a validation error that says why it may not be called."""
    try:
        outbound_url_check(url)
    except UnsafeUrl as error:
        raise serializers.ValidationError(str(error)) from None
    return url
