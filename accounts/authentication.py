from __future__ import annotations

import logging
from datetime import timedelta

from django.db import DatabaseError
from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiKey, key_hash

logger = logging.getLogger(__name__)
# A key's last use is stored to the minute: a client polling GET answers costs no write each.
LAST_USED_RESOLUTION = timedelta(minutes=1)


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
        key_use_record(key)
        return key, key

    def authenticate_header(self, request) -> str:
        return self.keyword


def key_use_record(key: ApiKey) -> None:
    """Note when the key was last used, at most once a minute.

    A failed write is logged, not raised: GET answers read off a replica (docs/operations.md)
    still come while the primary is away, and a write refused then fails on its own.
    """
    now = timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return
    try:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    except DatabaseError as error:
        logger.warning("The last use of API key %s is not stored: %s", key.pk, error)
