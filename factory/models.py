from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Task(models.TextChoices):
    BINARY = "binary_classification"
    MULTICLASS = "multiclass_classification"
    REGRESSION = "regression"


class MLModel(models.Model):
    """A model in production, known by its slug name."""

    name = models.SlugField(max_length=100, unique=True)
    task = models.CharField(max_length=40, choices=Task.choices)
    positive_class = models.JSONField(null=True, blank=True)
    description = models.TextField(blank=True, default="")
    owners = models.JSONField(default=list)
    on_call = models.JSONField(default=list)
    # Where retrain requests are POSTed (JSON); empty: recorded and signalled only.
    retrain_webhook_url = models.URLField(max_length=500, blank=True, default="")
    # Drift method/threshold overrides (monitoring.stats.drift.drift_settings_parse reads them).
    drift_settings = models.JSONField(default=dict, blank=True)
    # {"start", "end"} (RFC 3339): the labelled window that calibrates estimated performance.
    estimation_reference = models.JSONField(null=True, blank=True)
    # The share of a window's expected outcomes that makes it mature (monitoring.metrics.maturity).
    label_maturity = models.FloatField(
        default=0.8,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        db_table = "factory_model"

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    """One version of a model. Versions first seen in prediction logs have no lineage."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=100)
    lineage = models.JSONField(null=True, blank=True)
    reference = models.JSONField(null=True, blank=True)
    has_lineage = models.BooleanField(default=False)
    body_sha256 = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    registered_at = models.DateTimeField(null=True, blank=True)  # when lineage was attached

    class Meta:
        ordering = ["model", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="version_unique_per_model")
        ]

    def __str__(self) -> str:
        return f"{self.model.name} {self.version}"


class Stage(models.TextChoices):
    """A rollout below 100% of its segments' traffic is a canary; 100% is production."""

    CANARY = "canary"
    PRODUCTION = "production"


class PromotionGate(models.Model):
    """A held-out metric a version's lineage must reach before it may go to a stage."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="gates")
    stage = models.CharField(max_length=20, choices=Stage.choices)
    metric = models.CharField(max_length=100)
    minimum = models.FloatField()

    class Meta:
        ordering = ["model", "stage", "metric"]
        constraints = [
            models.UniqueConstraint(fields=["model", "stage", "metric"], name="gate_unique")
        ]

    def __str__(self) -> str:
        return f"{self.stage} gate {self.metric} >= {self.minimum}"


class RolloutKind(models.TextChoices):
    ROLLOUT = "rollout"
    ROLLBACK = "rollback"


class Rollout(models.Model):
    """One change of the deployment plan. The plan is the fold of the active rollouts in order;
    a rollback is recorded as its own row and deactivates the latest active rollout."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="rollouts")
    kind = models.CharField(max_length=20, choices=RolloutKind.choices, default="rollout")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="rollouts")
    traffic_percent = models.FloatField()
    segments = models.JSONField(default=list)  # empty: every segment
    parameters = models.JSONField(default=dict)
    note = models.TextField(blank=True, default="")
    actor = models.CharField(max_length=200, blank=True, default="")
    active = models.BooleanField(default=True)
    undoes = models.OneToOneField(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="undone_by"
    )
    # The plan this rollout produced (factory/rollouts.py): routing reads the latest active one.
    plan = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "id"]
        indexes = [
            models.Index(fields=["model", "kind", "active", "-id"], name="rollout_plan_in_force")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.pk} at {self.traffic_percent}%"


class AuditEntry(models.Model):
    """Every factory change: who (API key name or user), when, what it was and what it became."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="audit")
    actor = models.CharField(max_length=200, blank=True, default="")
    action = models.CharField(max_length=50)
    subject = models.CharField(max_length=200, blank=True, default="")
    before = models.JSONField(null=True)
    after = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.subject} by {self.actor or '?'}"


class RetrainStatus(models.TextChoices):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class RetrainRequest(models.Model):
    """A request to retrain, made once per firing alert (the alert's id is unique here).

    The alert lives in monitoring, which depends on the factory, so it is kept by id only.
    """

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="retrain_requests")
    version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True, blank=True)
    alert_id = models.BigIntegerField(unique=True)
    rule_id = models.BigIntegerField(null=True)
    metric = models.CharField(max_length=200, blank=True, default="")
    value = models.FloatField(null=True)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    manifest = models.JSONField(null=True)
    status = models.CharField(max_length=20, choices=RetrainStatus.choices, default="pending")
    webhook_url = models.URLField(max_length=500, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    claimed_until = models.DateTimeField(null=True)
    delivered_at = models.DateTimeField(null=True)
    error = models.TextField(blank=True, default="")  # the webhook's last failure
    hooks_error = models.TextField(blank=True, default="")  # a failing signal listener or task
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"retrain request of alert {self.alert_id}: {self.status}"
