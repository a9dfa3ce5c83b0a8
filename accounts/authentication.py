from __future__ import annotations

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiKey, key_hash


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`; the request's user and auth are the key itself."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, raw_key = header.partition(" ")
        # An authentication scheme is case-insensitive (RFC 9110): "bearer" is "Bearer".
        if keyword.lower() != self.keyword.lower() or not raw_key.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <key>'.")
        key = (
            ApiKey.objects.filter(key_sha256=key_hash(raw_key.strip()), revoked_at__isnull=True)
            .prefetch_related("limited_to")
            .first()
        )
        if key is None:
            raise exceptions.AuthenticationFailed("This API key is unknown or revoked.")
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
        return key, key

    def authenticate_header(self, request) -> str:
        return self.keyword
