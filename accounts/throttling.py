"""Per-key request rates, counted in the shared cache (Redis in production)."""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiKey


class KeyRateThrottle(SimpleRateThrottle):
    """At most `CANARY_INGEST_RATE` requests per API key (or per user); 429 with Retry-After."""

    scope = "ingest"

    def get_rate(self) -> str | None:
        # Read at request time, so the setting can change without re-importing the class.
        return settings.CANARY_INGEST_RATE or None

    def get_cache_key(self, request, view) -> str:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.key_sha256[:32]}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"throttle:{self.scope}:{ident}"
