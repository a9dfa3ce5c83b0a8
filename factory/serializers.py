from __future__ import annotations

from rest_framework import serializers

from factory.models import (
    AuditEntry,
    MLModel,
    ModelVersion,
    RetrainRequest,
    Rollout,
    Task,
)
from monitoring.stats.drift import (
    CATEGORICAL_METHODS,
    NUMERICAL_METHODS,
    drift_settings_json,
    drift_settings_parse,
)


class DriftOverrideSerializer(serializers.Serializer):
    method = serializers.ChoiceField(
        choices=sorted(NUMERICAL_METHODS | CATEGORICAL_METHODS),
        help_text="numerical: ks, wasserstein, psi, jensenshannon, hellinger; "
        "categorical: chisquare, psi, jensenshannon, hellinger",
    )
    threshold = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="p-value methods (ks, chisquare): drifted below it; others: at or above it. "
        "Absent or null: the method's default",
    )


class DriftSettingsSerializer(serializers.Serializer):
    """Per-model drift overrides; every key optional (API.md, models)."""

    numerical = DriftOverrideSerializer(
        required=False, allow_null=True, help_text="for every numerical feature"
    )
    categorical = DriftOverrideSerializer(
        required=False, allow_null=True, help_text="for every categorical feature"
    )
    features = serializers.DictField(
        child=DriftOverrideSerializer(),
        required=False,
        help_text="per feature name; wins over numerical/categorical",
    )
    share_threshold = serializers.FloatField(
        required=False,
        help_text="the dataset drifts when at least this share of tested features drift "
        "(default 0.5)",
    )

    def to_internal_value(self, data):
        try:
            return drift_settings_json(drift_settings_parse(data))
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None

    def to_representation(self, instance):
        return drift_settings_json(drift_settings_parse(instance))


class ModelCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    task = serializers.ChoiceField(choices=Task.values)
    positive_class = serializers.JSONField(required=False, allow_null=True, default=None)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    owners = serializers.ListField(child=serializers.EmailField(), required=False, default=list)
    on_call = serializers.ListField(child=serializers.EmailField(), required=False, default=list)
    drift = DriftSettingsSerializer(required=False, source="drift_settings")

    def validate_positive_class(self, value):
        if isinstance(value, (dict, list)):
            raise serializers.ValidationError("must be a number, string or boolean")
        return value


class VersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["version", "has_lineage", "lineage", "created_at"]


class ModelUpdateSerializer(serializers.Serializer):
    """What PATCH on a model may change (the rest is fixed at creation)."""

    drift = DriftSettingsSerializer(source="drift_settings")

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - {"drift"}
            if unknown:
                raise serializers.ValidationError(
                    {key: ["cannot be changed here; only drift can"] for key in sorted(unknown)}
                )
        return super().to_internal_value(data)


class ModelSerializer(serializers.ModelSerializer):
    versions = VersionSerializer(many=True, read_only=True)
    drift = DriftSettingsSerializer(source="drift_settings", read_only=True)
    health = serializers.CharField(read_only=True)
    last_prediction_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = MLModel
        fields = [
            "name", "task", "positive_class", "description", "owners", "on_call", "health",
            "versions", "last_prediction_at", "created_at", "drift",
        ]  # fmt: skip


class VersionDetailSerializer(serializers.ModelSerializer):
    reference = serializers.JSONField()

    class Meta:
        model = ModelVersion
        fields = [
            "version", "has_lineage", "lineage", "reference", "body_sha256", "created_at",
            "registered_at",
        ]  # fmt: skip


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
            "id", "kind", "version", "traffic_percent", "segments", "parameters", "note",
            "actor", "active", "undoes", "created_at",
        ]  # fmt: skip


class GatesSerializer(serializers.Serializer):
    canary = serializers.DictField(child=serializers.FloatField(), required=False, default=dict)
    production = serializers.DictField(child=serializers.FloatField(), required=False, default=dict)


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "actor", "action", "subject", "before", "after", "created_at"]


class RetrainRequestSerializer(serializers.ModelSerializer):
    version = serializers.CharField(source="version.version", allow_null=True, default=None)

    class Meta:
        model = RetrainRequest
        fields = [
            "id", "version", "alert_id", "rule_id", "metric", "value", "window_start",
            "window_end", "manifest", "status", "webhook_url", "attempts", "delivered_at",
            "error", "hooks_error", "created_at",
        ]  # fmt: skip


class RetrainSettingsSerializer(serializers.Serializer):
    retrain_webhook_url = serializers.URLField(allow_blank=True, max_length=500)
