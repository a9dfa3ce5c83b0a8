from __future__ import annotations

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

    class Meta:
        ordering = ["model", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="version_unique_per_model")
        ]

    def __str__(self) -> str:
        return f"{self.model.name} {self.version}"
