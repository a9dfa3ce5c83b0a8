from __future__ import annotations

from rest_framework import serializers

from monitoring.metrics import MetricError, metric_check
from monitoring.models import Alert, AlertRule, RuleKind

AVAILABLE_KINDS = (RuleKind.STATIC, RuleKind.NO_DATA)


class AlertRuleSerializer(serializers.ModelSerializer):
    recipients = serializers.ListField(child=serializers.EmailField(), required=False)

    class Meta:
        model = AlertRule
        fields = [
            "id", "metric", "kind", "lower", "upper", "percent", "baseline_windows", "k",
            "min_count", "granularity", "for_windows", "cooldown_minutes", "version", "segment",
            "severity", "recipients", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "created_at"]

    def validate_kind(self, kind):
        if kind not in AVAILABLE_KINDS:
            raise serializers.ValidationError(
                f"kind {kind!r} is not available yet; use static or no_data"
            )
        return kind

    def validate_metric(self, metric):
        try:
            metric_check(self.context["model"], metric)
        except MetricError as error:
            raise serializers.ValidationError(str(error)) from None
        return metric

    def validate_for_windows(self, value):
        if value < 1:
            raise serializers.ValidationError("must be at least 1")
        return value

    def validate(self, attrs):
        merged = {**self.instance.__dict__, **attrs} if self.instance else attrs
        lower, upper = merged.get("lower"), merged.get("upper")
        if merged.get("kind") == RuleKind.STATIC:
            if lower is None and upper is None:
                raise serializers.ValidationError({"lower": "static rules need lower or upper"})
            if lower is not None and upper is not None and lower >= upper:
                raise serializers.ValidationError({"upper": "must be greater than lower"})
        return attrs


class AlertSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    rule = serializers.IntegerField(source="rule_id")
    metric = serializers.CharField(source="rule.metric")
    notified = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id", "model", "rule", "metric", "state", "direction", "value", "n", "lower",
            "upper", "window_start", "window_end", "started_at", "resolved_at", "notified",
        ]  # fmt: skip

    def get_notified(self, alert) -> bool:
        return any(n.sent_at is not None for n in alert.notifications.all())


class PointSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    value = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    label_coverage = serializers.FloatField(allow_null=True)


class ReceiptSerializer(serializers.Serializer):
    batch_id = serializers.CharField()
    received = serializers.IntegerField()
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())
    errors_truncated = serializers.BooleanField(required=False)


class DriftReferenceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["training", "window"])
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField(allow_null=True)
    n = serializers.IntegerField()


class DriftCurrentSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    n = serializers.IntegerField()


class FeatureDriftSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["numerical", "categorical"])
    method = serializers.CharField(allow_null=True)
    statistic = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    drifted = serializers.BooleanField(allow_null=True)
    psi = serializers.FloatField(allow_null=True)
    n_reference = serializers.IntegerField()
    n_current = serializers.IntegerField()
    missing_current = serializers.IntegerField()
    unseen_share = serializers.FloatField(allow_null=True)
    max_error = serializers.FloatField(allow_null=True)
    note = serializers.CharField(allow_null=True)


class DriftSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.CharField()
    reference = DriftReferenceSerializer()
    current = DriftCurrentSerializer()
    features = FeatureDriftSerializer(many=True)
    share_drifted = serializers.FloatField(allow_null=True)
    dataset_drifted = serializers.BooleanField(allow_null=True)


class CompareSideSerializer(serializers.Serializer):
    version = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()


class ComparisonSerializer(serializers.Serializer):
    metric = serializers.CharField()
    baseline = CompareSideSerializer()
    candidate = CompareSideSerializer()
    difference = serializers.FloatField(allow_null=True)
    relative_difference = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    mde = serializers.FloatField(allow_null=True)
    powered = serializers.BooleanField(allow_null=True)


class SensitivitySerializer(serializers.Serializer):
    metric = serializers.CharField()
    granularity = serializers.CharField()
    windows = serializers.IntegerField()
    value = serializers.FloatField(allow_null=True)
    n_per_window = serializers.FloatField(allow_null=True)
    std = serializers.FloatField(allow_null=True)
    mde_absolute = serializers.FloatField(allow_null=True)
    mde_relative = serializers.FloatField(allow_null=True)
    windows_to_detect = serializers.DictField(child=serializers.IntegerField(allow_null=True))
