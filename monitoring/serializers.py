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
            "severity", "recipients", "requests_retrain", "created_at",
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
