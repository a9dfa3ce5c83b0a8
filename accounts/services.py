from __future__ import annotations

import secrets

from django.apps import apps
from django.db import transaction

from accounts.models import ApiKey, key_hash


@transaction.atomic
def api_key_create(*, name: str, scopes: list[str], model_names: list[str] = ()) -> str:
    """Create a key and return its raw value, which is never stored."""
    raw_key = "cnry_" + secrets.token_urlsafe(32)
    key = ApiKey.objects.create(name=name, key_sha256=key_hash(raw_key), scopes=sorted(set(scopes)))
    if model_names:
        # By its label: keys sit below the factory and must not import it.
        ml_model = apps.get_model("factory", "MLModel")
        key.limited_to.set(ml_model.objects.filter(name__in=model_names))
    return raw_key
