"""Canary's Python client: register versions, log predictions and outcomes, profile references."""

from canary_client.client import CanaryClient, CanaryError
from canary_client.profile import PROFILE_FORMAT, reference_profile

__all__ = ["PROFILE_FORMAT", "CanaryClient", "CanaryError", "reference_profile"]
