from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from numbers import Integral

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as ModelValidationError
from django.utils.dateparse import parse_datetime
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.numbers import finite
from factory import serializers as factory_serializers
from monitoring.ingest.quarantine import EXPORT_COLUMNS
from monitoring.metrics.registry import metric_find
from monitoring.metrics.series import metric_check
from monitoring.metrics.traffic import traffic_note
from monitoring.metrics.windows import MetricError
from monitoring.models import (
    Alert,
    AlertEvaluation,
    AlertRule,
    CalibrationSource,
    Granularity,
    JobFailure,
    QuarantinedRecord,
    WebhookEndpoint,
)
from monitoring.stats.drift import (
    CATEGORICAL_METHODS,
    NUMERICAL_METHODS,
    drift_settings_json,
    drift_settings_parse,
)


@contextmanager
def model_errors_reported() -> Iterator[None]:
    """A model's ValidationError (its clean(), its constraints) answered as a serializer's 400."""
    try:
        yield
    except ModelValidationError as error:
        errors = {
            "non_field_errors" if field == NON_FIELD_ERRORS else field: messages
            for field, messages in error.message_dict.items()
        }
        raise serializers.ValidationError(errors) from None


class FiniteFloatField(serializers.FloatField):
    """A number as JSON carries it: null where the domain's value is missing, NaN or infinite
    (a window of only missing values, a chi-square on a category the reference never had)."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value):
        return finite(super().to_representation(value))


@extend_schema_field(OpenApiTypes.NUMBER)
class MetricValueField(serializers.Field):
    """A metric's value as the series holds it: counts stay integers; null where not finite."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value):
        return int(value) if isinstance(value, Integral) else finite(float(value))


class AlertRuleSerializer(serializers.ModelSerializer):
    recipients = serializers.ListField(child=serializers.EmailField(), required=False)
    warnings = serializers.SerializerMethodField()

    class Meta:
        model = AlertRule
        fields = [
            "id",
            "metric",
            "kind",
            "lower",
            "upper",
            "percent",
            "baseline_windows",
            "k",
            "baseline_version",
            "sides",
            "min_count",
            "granularity",
            "for_windows",
            "resolve_windows",
            "cooldown_minutes",
            "repeat_minutes",
            "version",
            "segment",
            "severity",
            "recipients",
            "silenced_until",
            "silence_reason",
            "is_default",
            "requests_retrain",
            "label_maturity",
            "warnings",
            "created_at",
        ]
        read_only_fields = ["id", "created_at", "is_default", "warnings"]
        extra_kwargs = {
            "label_maturity": {
                "min_value": 0.0,
                "max_value": 1.0,
                "help_text": "rules on realised metrics judge a window once this share of its "
                "expected outcomes has arrived; null: the model's label_maturity",
            }
        }

    def get_warnings(self, rule) -> list[str]:
        # Computed by the view, once for all the rules it answers: they read recent windows.
        return self.context.get("warnings", {}).get(rule.pk, [])

    def validate_metric(self, metric):
        if (entry := metric_find(metric)) and entry.no_data_only:
            return metric  # only for no_data rules, checked in AlertRule.clean()
        try:
            metric_check(self.context["model"], metric)
        except MetricError as error:
            raise serializers.ValidationError(str(error)) from None
        return metric

    def validate_for_windows(self, value):
        if value < 1:
            raise serializers.ValidationError("must be at least 1")
        return value

    def validate_resolve_windows(self, value):
        if value < 1:
            raise serializers.ValidationError("must be at least 1")
        return value


class SilenceSerializer(serializers.Serializer):
    until = serializers.DateTimeField()
    reason = serializers.CharField(max_length=500)


class AcknowledgeSerializer(serializers.Serializer):
    by = serializers.CharField(max_length=200, required=False, default="")


class WebhookSerializer(serializers.ModelSerializer):
    """A channel of the model: `kind` webhook (the default), slack or pagerduty. PagerDuty's
    `url` is its Events API v2 URL and `routing_key` the service's integration key, which is
    written, never answered back."""

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "kind", "url", "routing_key", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"routing_key": {"write_only": True}}
        validators = []  # the model's constraints are checked by clean() and answered as 409

    def validate_url(self, url: str) -> str:
        return factory_serializers.outbound_url_valid(url)

    def validate(self, data: dict) -> dict:
        with model_errors_reported():
            WebhookEndpoint(**data).clean()
        return data


class EvaluationSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertEvaluation
        fields = [
            "id",
            "rule",
            "alert",
            "run_id",
            "evaluated_at",
            "window_start",
            "window_end",
            "value",
            "lower",
            "upper",
            "n",
            "verdict",
            "state",
            "error",
            "duration_ms",
        ]


class AlertSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    rule = serializers.IntegerField(source="rule_id")
    metric = serializers.CharField(source="rule.metric")
    notified = serializers.SerializerMethodField()
    notifications = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id",
            "model",
            "rule",
            "metric",
            "state",
            "direction",
            "value",
            "n",
            "lower",
            "upper",
            "window_start",
            "window_end",
            "started_at",
            "resolved_at",
            "notified",
            "acknowledged_at",
            "acknowledged_by",
            "notifications",
        ]

    def get_notifications(self, alert) -> list[dict]:
        return [
            {
                "kind": n.kind,
                "channel": n.channel,
                "sent_at": n.sent_at,
                "superseded": n.superseded,
                "attempts": n.attempts,
                "error": n.error,
            }
            for n in alert.notifications.all()
        ]

    def get_notified(self, alert) -> bool:
        return any(n.sent_at is not None and not n.superseded for n in alert.notifications.all())


class PointSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    value = MetricValueField(help_text="an integer for counts, null for a window without data")
    n = serializers.IntegerField()
    ci_low = FiniteFloatField()
    ci_high = FiniteFloatField()
    label_coverage = FiniteFloatField()
    maturity = FiniteFloatField(
        help_text="share of the window's expected outcomes arrived so far (its label coverage "
        "over the expected final coverage of the model's Kaplan-Meier curve); null while no "
        "outcome is known"
    )
    mature = serializers.BooleanField(
        help_text="whether the share has reached the model's label_maturity (or the window is "
        "older than the age by which nearly every outcome arrives)"
    )


class EstimationReferenceSerializer(serializers.Serializer):
    version = serializers.CharField(help_text="the version estimated")
    calibrated_on = serializers.CharField(
        help_text="the version whose reference calibrated it (regression: fitted its error "
        "model): itself, or the production version's while it has no reference of its own"
    )
    source = serializers.ChoiceField(choices=CalibrationSource.choices)
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField(allow_null=True)
    labelled = serializers.IntegerField(
        help_text="labelled rows the calibration (regression: the error model) was fitted on"
    )


class MetricSeriesSerializer(serializers.Serializer):
    model = serializers.CharField()
    metric = serializers.CharField()
    granularity = serializers.ChoiceField(choices=Granularity.choices)
    points = PointSerializer(many=True)
    reference = EstimationReferenceSerializer(
        many=True,
        required=False,
        help_text="estimated:* and estimation_gap:* only: what calibrated each version "
        "estimated (regression: what its error model of absolute and squared errors was fitted "
        "on); a version absent here has no calibration yet and is not estimated",
    )


class ReceiptSerializer(serializers.Serializer):
    batch_id = serializers.CharField()
    received = serializers.IntegerField()
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())
    errors_truncated = serializers.BooleanField(required=False)


class PredictionRecordSerializer(serializers.Serializer):
    """A prediction record as docs/api.md lists it: the schema's description only, the body
    is streamed and checked record by record (monitoring.ingest.records)."""

    prediction_id = serializers.CharField(max_length=200)
    timestamp = serializers.DateTimeField(help_text="RFC 3339 with an offset")
    model_version = serializers.CharField(max_length=100)
    prediction = serializers.JSONField(help_text="the class or the value: number, string, bool")
    score = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="binary: the positive class's probability",
    )
    scores = serializers.DictField(
        child=serializers.FloatField(min_value=0, max_value=1),
        required=False,
        help_text="multiclass: each class's probability, two or more classes summing to 1 "
        "within 0.001 and naming the predicted class; in CSV and Parquet one column "
        "`score:CLASS` per class. A malformed one quarantines its record alone",
    )
    segment = serializers.CharField(required=False, max_length=200)
    features = serializers.DictField(required=False, help_text="name to number, string, bool")


class PredictionBatchSerializer(serializers.Serializer):
    records = PredictionRecordSerializer(many=True, help_text="or a bare array of records")


class DriftReferenceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=["training", "window"],
        help_text="training: a version's registered reference; window: a baseline window",
    )
    start = serializers.DateTimeField(allow_null=True, help_text="null for a training reference")
    end = serializers.DateTimeField(allow_null=True, help_text="null for a training reference")
    n = serializers.IntegerField()
    version = serializers.CharField(
        allow_null=True,
        help_text="whose registered reference (training): the version asked for, else the one "
        "that served most of the current window; null for a window",
    )


class DriftCurrentSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    n = serializers.IntegerField(help_text="predictions in the window")


class FeatureDriftSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=["numerical", "categorical"])
    method = serializers.CharField(allow_null=True, help_text="null when nothing was tested")
    statistic = FiniteFloatField(help_text="null without values on one side, or when infinite")
    p_value = FiniteFloatField()
    threshold = FiniteFloatField()
    drifted = serializers.BooleanField(allow_null=True)
    psi = FiniteFloatField()
    n_reference = serializers.IntegerField()
    n_current = serializers.IntegerField()
    missing_current = serializers.IntegerField()
    unseen_share = FiniteFloatField(
        help_text="share of current values in categories the reference never had"
    )
    max_error = FiniteFloatField(
        help_text="bound on the statistic's error from binning, where one is known (KS)"
    )
    note = serializers.CharField(allow_null=True, help_text="why a number is missing or odd")


class DriftSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.CharField(
        allow_null=True,
        help_text="the version asked for; null: the model's whole traffic, every version's "
        "predictions in both windows",
    )
    versions = serializers.ListField(
        child=serializers.CharField(), help_text="the versions looked at"
    )
    reference = DriftReferenceSerializer()
    current = DriftCurrentSerializer()
    features = FeatureDriftSerializer(many=True)
    outputs = FeatureDriftSerializer(
        many=True,
        help_text="score and prediction against the reference's score/prediction entries "
        "(or the baseline window); not counted in share_drifted",
    )
    share_drifted = FiniteFloatField(help_text="null when no feature could be tested")
    share_threshold = serializers.FloatField(
        help_text="the dataset drifts when share_drifted reaches this (model setting, default 0.5)"
    )
    dataset_drifted = serializers.BooleanField(allow_null=True)


class CompareSideSerializer(serializers.Serializer):
    version = serializers.CharField()
    value = FiniteFloatField()
    n = serializers.IntegerField()


class ComparedSerializer(serializers.Serializer):
    metric = serializers.CharField()
    baseline = CompareSideSerializer()
    candidate = CompareSideSerializer()
    difference = FiniteFloatField(help_text="candidate minus baseline; null without enough data")
    relative_difference = FiniteFloatField()
    ci_low = FiniteFloatField()
    ci_high = FiniteFloatField()
    p_value = FiniteFloatField()
    mde = FiniteFloatField(help_text="the smallest difference these sample sizes would detect")
    powered = serializers.BooleanField(allow_null=True)


class ServedTrafficSerializer(serializers.Serializer):
    version = serializers.CharField()
    first_hour = serializers.DateTimeField(allow_null=True)
    last_hour = serializers.DateTimeField(allow_null=True)
    segments = serializers.ListField(child=serializers.CharField(allow_blank=True))
    predictions = serializers.IntegerField()
    shared_predictions = serializers.IntegerField(
        help_text="predictions in hours and segments where the other version served too"
    )


class TrafficSerializer(serializers.Serializer):
    baseline = ServedTrafficSerializer()
    candidate = ServedTrafficSerializer()
    confounded = serializers.BooleanField(
        help_text="either version has under 90% of its predictions in shared hours and segments"
    )
    note = serializers.SerializerMethodField(help_text="the confound in words; empty if none")

    def get_note(self, overlap) -> str:
        return traffic_note(overlap)


class ComparisonSerializer(ComparedSerializer):
    traffic = TrafficSerializer(help_text="which hours and segments each version served")
    shared_traffic = ComparedSerializer(
        source="shared",
        allow_null=True,
        help_text="the comparison on the hours and segments both versions served; null unless "
        "the versions served different traffic and shared some (never for drift:F)",
    )


class SensitivitySerializer(serializers.Serializer):
    metric = serializers.CharField()
    granularity = serializers.ChoiceField(choices=Granularity.choices)
    windows = serializers.IntegerField(help_text="windows with data")
    value = FiniteFloatField()
    n_per_window = FiniteFloatField()
    std = FiniteFloatField(help_text="one observation's standard deviation")
    mde_absolute = FiniteFloatField()
    mde_relative = FiniteFloatField()
    windows_to_detect = serializers.DictField(
        child=serializers.IntegerField(allow_null=True),
        help_text="per relative change (0.01, 0.02, 0.05, 0.1): windows to pool on each side",
    )


class QuarantinedRecordSerializer(serializers.ModelSerializer):
    batch_id = serializers.UUIDField(source="batch.public_id")

    class Meta:
        model = QuarantinedRecord
        fields = list(EXPORT_COLUMNS)  # the downloads' columns too


class ResubmissionSerializer(ReceiptSerializer):
    resolved = serializers.BooleanField()


# --- models with their drift settings (the factory's serializers know nothing of drift) ---


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
    """Per-model drift overrides; every key optional (docs/api.md, models)."""

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


class EstimationReferenceSettingSerializer(serializers.Serializer):
    """The labelled window that calibrates estimated performance (docs/api.md, models)."""

    start = serializers.CharField(help_text="RFC 3339 with an offset")
    end = serializers.CharField(help_text="RFC 3339 with an offset; after start")

    def validate(self, data):
        moments = {}
        for name in ("start", "end"):
            moment = parse_datetime(data[name])
            if moment is None or moment.tzinfo is None:
                raise serializers.ValidationError(
                    {name: [f"{data[name]!r} is not an RFC 3339 time with an offset"]}
                )
            moments[name] = moment
        if moments["end"] <= moments["start"]:
            raise serializers.ValidationError({"end": ["must be after start"]})
        return {name: moment.isoformat() for name, moment in moments.items()}


class ModelCreateSerializer(factory_serializers.ModelCreateSerializer):
    drift = DriftSettingsSerializer(required=False, source="drift_settings")


class ModelSerializer(factory_serializers.ModelSerializer):
    drift = DriftSettingsSerializer(source="drift_settings", read_only=True)
    estimation_reference = serializers.JSONField(
        read_only=True, help_text="{start, end}: the window that calibrates estimates, or null"
    )

    class Meta(factory_serializers.ModelSerializer.Meta):
        fields = [
            *factory_serializers.ModelSerializer.Meta.fields,
            "drift",
            "estimation_reference",
            "label_maturity",
        ]


LABEL_MATURITY_HELP = (
    "share of a window's expected outcomes that makes it mature, 0 to 1 (default 0.8)"
)


class ModelUpdateSerializer(serializers.Serializer):
    """What PATCH on a model may change (the rest is fixed at creation)."""

    CHANGEABLE = ("drift", "estimation_reference", "label_maturity")

    drift = DriftSettingsSerializer(source="drift_settings", required=False)
    estimation_reference = EstimationReferenceSettingSerializer(
        required=False,
        allow_null=True,
        help_text="the labelled window that calibrates estimated performance; setting it "
        "again (or null) makes every version choose its calibration again",
    )
    label_maturity = serializers.FloatField(
        required=False, min_value=0.0, max_value=1.0, help_text=LABEL_MATURITY_HELP
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = set(data) - set(self.CHANGEABLE)
            if unknown:
                allowed = ", ".join(self.CHANGEABLE[:-1]) + " and " + self.CHANGEABLE[-1]
                raise serializers.ValidationError(
                    {
                        key: [f"cannot be changed here; only {allowed} can"]
                        for key in sorted(unknown)
                    }
                )
        return super().to_internal_value(data)


class JobFailureSerializer(serializers.ModelSerializer):
    class Meta:
        model = JobFailure
        fields = [
            "stage",
            "first_hour",
            "last_hour",
            "error",
            "first_seen",
            "last_seen",
            "attempts",
            "retry_at",
        ]


class MonitoringSerializer(serializers.Serializer):
    """Whether the model's jobs are failing: what, since when, for how many runs in a row."""

    status = serializers.SerializerMethodField()
    failing_since = serializers.DateTimeField()
    failed_runs = serializers.IntegerField()
    last_run_at = serializers.DateTimeField()
    failures = JobFailureSerializer(many=True)

    def get_status(self, health) -> str:
        return "failing" if health.failures else "ok"


class ExplainWindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    value = FiniteFloatField()
    n = serializers.IntegerField(help_text="what the metric is computed from in the window")


class ExplainDimensionSerializer(serializers.Serializer):
    dimension = serializers.CharField(help_text='"segment", "version" or "feature:NAME"')
    mix_effect = FiniteFloatField(help_text="null for a metric that is not a mean over its n")
    within_effect = FiniteFloatField(help_text="null for a metric that is not a mean over its n")


class ExplainDriverSerializer(serializers.Serializer):
    dimension = serializers.CharField()
    slice = serializers.CharField(
        help_text="a segment, a version, a category, `(other)`, `(missing)` or a decile `[a, b)`"
    )
    share_baseline = FiniteFloatField(help_text="the slice's share of the metric's n")
    share_current = FiniteFloatField()
    value_baseline = FiniteFloatField()
    value_current = FiniteFloatField()
    mix_effect = FiniteFloatField()
    within_effect = FiniteFloatField()
    impact = FiniteFloatField(
        help_text="metrics that are not means over their n: the change minus the change "
        "without this slice (roc_auc: both on the slices' 50 score bins); null otherwise"
    )
    p_value = FiniteFloatField(help_text="the slice's own change, baseline against current")
    q_value = FiniteFloatField(help_text="Benjamini-Hochberg over every slice of the answer")


class ExplanationSerializer(serializers.Serializer):
    metric = serializers.CharField()
    baseline = ExplainWindowSerializer()
    current = ExplainWindowSerializer()
    change = FiniteFloatField(help_text="current value minus baseline value")
    dimensions = ExplainDimensionSerializer(many=True)
    drivers = ExplainDriverSerializer(many=True)
