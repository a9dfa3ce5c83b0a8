from __future__ import annotations

import hashlib

from django.db import models


class Scope(models.TextChoices):
    PREDICTIONS_WRITE = "predictions:write"
    OUTCOMES_WRITE = "outcomes:write"
    READ = "read"
    FACTORY_WRITE = "factory:write"


def key_hash(raw_key: str) -> str:
    # Keys are long random tokens, so a plain SHA-256 is enough to make a stolen table useless.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    name = models.CharField(max_length=100)
    key_sha256 = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    # Empty: every model. Otherwise the key may touch only these.
    limited_to = models.ManyToManyField("factory.MLModel", blank=True, related_name="api_keys")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def is_authenticated(self) -> bool:
        return True
