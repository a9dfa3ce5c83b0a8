from __future__ import annotations

from rest_framework import serializers

from factory.models import MLModel, ModelVersion, Task


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
            "name", "task", "positive_class", "description", "owners", "on_call", "health",
            "versions", "last_prediction_at", "created_at",
        ]  # fmt: skip
