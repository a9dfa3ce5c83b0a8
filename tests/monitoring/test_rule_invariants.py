"""A rule's own invariants live in the model: clean() for people, a constraint for everyone."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from monitoring.alerts.services import alert_rule_create, alert_rule_update
from monitoring.api.serializers import AlertRuleSerializer
from monitoring.models import AlertRule

pytestmark = pytest.mark.django_db
RULES = "/api/v1/models/churn/alert-rules"


def test_the_database_refuses_a_lower_bound_above_the_upper(model):
    with pytest.raises(IntegrityError):
        AlertRule.objects.create(model=model, metric="accuracy", kind="band", k=3, lower=2, upper=1)


def test_inverted_bounds_are_refused_for_every_kind_with_the_static_rules_message(model, writer):
    # given a band rule whose bounds are the wrong way round
    body = {"metric": "accuracy", "kind": "band", "k": 3, "lower": 0.9, "upper": 0.1}
    # when it is posted
    response = writer.post(RULES, body, format="json")
    # then it is refused as a static rule with the same bounds is
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "upper", "message": "must be greater than lower"}
    ]
    assert not AlertRule.objects.exists()


def test_the_service_checks_the_rule_and_reports_by_field(model):
    with pytest.raises(ValidationError) as refused:
        alert_rule_create(model=model, metric="accuracy", kind="relative")
    assert refused.value.message_dict == {"percent": ["relative rules need percent > 0"]}
    rule = alert_rule_create(model=model, metric="accuracy", kind="static", lower=0.7)
    assert AlertRule.objects.get().lower == 0.7 and rule.pk


def test_a_refused_update_leaves_the_rule_as_it_was(model):
    rule = alert_rule_create(model=model, metric="accuracy", kind="static", lower=0.7)
    with pytest.raises(ValidationError):
        alert_rule_update(rule=rule, upper=0.5)
    assert rule.upper is None
    rule.refresh_from_db()
    assert (rule.lower, rule.upper) == (0.7, None)
    changed = alert_rule_update(rule=rule, upper=0.9)
    assert AlertRule.objects.get().upper == 0.9 == changed.upper


def test_the_rule_serializer_reads_nothing_from_the_database(model):
    rule = alert_rule_create(model=model, metric="accuracy", kind="band", k=3)
    rule = AlertRule.objects.get(pk=rule.pk)
    with CaptureQueriesContext(connection) as queries:
        body = AlertRuleSerializer(rule, context={"warnings": {rule.pk: ["noisy"]}}).data
    assert len(queries) == 0
    assert body["warnings"] == ["noisy"]
