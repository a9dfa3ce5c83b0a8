"""The demo's rules raise the alerts a data scientist expects from its change, and no others."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.demo import DEMO_DAYS, demo_create
from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertEvaluation
from tests.conftest import NOW

pytestmark = pytest.mark.django_db


def test_demo_alerts_fire_on_the_change_only(smtp_server):
    # given: four weeks of churn traffic; halfway, tenure drifts and accuracy falls 0.88 -> 0.70
    model = demo_create(now=NOW)
    # when
    jobs_run(model_id=model.pk, now=NOW)
    # then: accuracy fires (static line and band), revenue per customer falls with the churn
    open_alerts = {
        (a.rule.metric, a.rule.kind, a.direction)
        for a in Alert.objects.exclude(state="resolved").select_related("rule")
    }
    assert {
        ("accuracy", "static", "too_low"),
        ("accuracy", "band", "too_low"),
        ("value:revenue", "band", "too_low"),
    } <= open_alerts
    # nothing before the change, no silent-feed alert, no alert that came and went
    change = NOW - timedelta(days=DEMO_DAYS / 2) - timedelta(days=1)
    assert all(a.first_window_start >= change for a in Alert.objects.all())
    assert not Alert.objects.filter(rule__kind="no_data").exists()
    assert not Alert.objects.filter(state="resolved").exists()
    # one grouped e-mail for the model
    assert len(smtp_server.messages) == 1
    # metrics this branch cannot compute yet are recorded as errors, not alerts
    errors = AlertEvaluation.objects.filter(verdict="error").values_list("rule__metric", flat=True)
    assert not Alert.objects.filter(rule__metric__in=list(errors)).exists()
