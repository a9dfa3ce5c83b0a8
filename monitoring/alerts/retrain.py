"""Firing alerts that ask the factory to retrain (monitoring uses the factory, not the reverse)."""

from __future__ import annotations

from factory.models import RetrainRequest
from factory.retrain import retrain_request_create
from monitoring.models import Alert, AlertState


def retrain_on_firing(alert: Alert) -> RetrainRequest | None:
    """Record a retrain request for this firing alert if its rule asks for one; once per alert."""
    if alert.state != AlertState.FIRING or not alert.rule.requests_retrain:
        return None
    return retrain_request_create(
        model=alert.model,
        alert_id=alert.pk,
        rule_id=alert.rule_id,
        metric=alert.rule.metric,
        value=alert.value,
        window_start=alert.window_start,
        window_end=alert.window_end,
        version_name=alert.rule.version,
    )
