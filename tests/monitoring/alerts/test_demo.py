"""The demo's change raises exactly the alerts a data scientist expects from it, and no others.

The demo: four weeks of churn traffic; halfway, version 1.1.0 takes over, new customers with
short tenure arrive (tenure drifts, plan and monthly charges do not), and the outcomes turn
noisier (30% wrong instead of 12%). Expected, and why:
- accuracy falls (static line at 0.8 and the default band): the outcomes are noisier;
- roc_auc falls (default band): the same noise breaks the ranking;
- positive_rate rises (default band): short tenure means high churn scores;
- value:revenue falls (default band on the business value): more churners pay nothing;
- drift:tenure_months rises above 0.1 (the demo's weekly drift rule): the drift itself.
Not expected: drift of plan or monthly charges, a silent feed, anything before the change.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitoring.demo import DEMO_DAYS, demo_create
from monitoring.jobs import jobs_run
from monitoring.metrics.windows import window_start
from monitoring.models import Alert, AlertEvaluation, Notification, Verdict
from tests.conftest import NOW

pytestmark = pytest.mark.django_db

EXPECTED = {
    ("accuracy", "static", "too_low"),
    ("accuracy", "band", "too_low"),
    ("roc_auc", "band", "too_low"),
    ("positive_rate", "band", "too_high"),
    ("value:revenue", "band", "too_low"),
    ("drift:tenure_months", "static", "too_high"),
}


# Two moments: windows fall differently around the change (noon on a Tuesday, and an
# afternoon on a Friday, as when `manage.py demo` runs at any time).
@pytest.mark.parametrize("now", [NOW, NOW + timedelta(days=3, hours=2, minutes=22)])
def test_demo_alerts_are_exactly_those_of_its_change(smtp_server, now):
    # given
    model = demo_create(now=now)
    # when
    report = jobs_run(model_id=model.pk, now=now)
    # then: the expected alerts fire, and nothing else ever opened
    alerts = list(Alert.objects.select_related("rule"))
    assert {(a.rule.metric, a.rule.kind, a.direction) for a in alerts} == EXPECTED
    assert len(alerts) == len(EXPECTED)
    assert {a.state for a in alerts} == {"firing"}
    # none before the change: each first breaching window holds the change or comes after it
    change = now - timedelta(days=DEMO_DAYS / 2)
    for alert in alerts:
        assert alert.first_window_start >= window_start(change, alert.rule.granularity)

    # the rules that stayed quiet were judged, not skipped: the other features' drift (no data
    # only in the weeks before 1.1.0 existed) and the feed
    def verdicts(metric: str) -> set[str]:
        rows = AlertEvaluation.objects.filter(rule__metric=metric)
        return set(rows.values_list("verdict", flat=True))

    for feature in ("plan", "monthly_charges"):
        assert Verdict.OK in verdicts(f"drift:{feature}")
        assert verdicts(f"drift:{feature}") <= {Verdict.OK, Verdict.NO_DATA}
    assert verdicts("predictions") == {Verdict.OK}
    assert not AlertEvaluation.objects.filter(verdict=Verdict.ERROR).exists()
    # bounds of proportions are shown within [0, 1]
    for alert in alerts:
        if alert.rule.metric in ("accuracy", "roc_auc", "positive_rate"):
            assert (alert.lower or 0) >= 0 and (alert.upper or 0) <= 1
    # one grouped e-mail for the model, naming every change, counted as one; the replay of
    # the past four weeks recorded no reminder (nobody was waiting for them)
    assert len(smtp_server.messages) == 1 and report.messages_sent == 1
    assert set(Notification.objects.values_list("kind", flat=True)) == {"firing"}
    assert Notification.objects.count() == len(EXPECTED)
    subject = smtp_server.messages[0][1]["Subject"]
    assert "churn: 6 alert changes" in subject
