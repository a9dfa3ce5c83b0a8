"""Canary's Python client: register versions, log predictions and outcomes, profile references."""

from canary_client.client import CanaryClient, CanaryError
from canary_client.profile import PROFILE_FORMAT, reference_profile
from canary_client.scores import class_scores

__all__ = ["PROFILE_FORMAT", "CanaryClient", "CanaryError", "class_scores", "reference_profile"]
