"""An alert e-mail about a value a user named with markup: the HTML carries it escaped."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest

from monitoring.ingest.services import records_ingest
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
from monitoring.models import AlertRule
from tests.conftest import outcome, prediction
from tests.monitoring.alerts.email_parts import inline_images
from tests.monitoring.alerts.test_kinds import DAY0, end_of_day

pytestmark = pytest.mark.django_db
HOSTILE = '"><img src=x onerror=alert(1)>'


def valued_traffic(model, day: int, value: float) -> None:
    at = DAY0 + timedelta(days=day, hours=6)
    ids = range(day * 1000, day * 1000 + 30)
    records_ingest(
        model=model,
        kind="predictions",
        records=[prediction(i, at=at) for i in ids],
        enqueue_jobs=False,
    )
    records_ingest(
        model=model,
        kind="outcomes",
        records=[outcome(i, at=at + timedelta(hours=1), values={HOSTILE: value}) for i in ids],
        enqueue_jobs=False,
    )


def test_a_value_named_with_markup_is_escaped_in_the_alert_e_mail(model, smtp_server):
    # given: a rule on the hostile value (as the default rules make one), and a day below it
    AlertRule.objects.create(
        model=model,
        metric=f"value:{HOSTILE}",
        kind="static",
        lower=5.0,
        min_count=10,
        repeat_minutes=0,
        cooldown_minutes=0,
    )
    valued_traffic(model, 0, 1.0)
    # when
    jobs_run(model_id=model.pk, now=end_of_day(0))
    # then: the message reached the SMTP server, its HTML has the name escaped, never raw
    emails = [m for _, m in smtp_server.messages if HOSTILE in m["Subject"]]
    assert emails, [m["Subject"] for _, m in smtp_server.messages]
    body = emails[0].get_body(preferencelist=("html",)).get_content()
    text = emails[0].get_body(preferencelist=("plain",)).get_content()
    assert "<img src=x" not in body
    assert html.escape(HOSTILE) in body
    # the chart is still there, its description (which names the value) escaped too
    (cid,) = inline_images(emails[0])
    assert (
        f'src="cid:{cid}"' in body
        and f'alt="{html.escape(metric_label(f"value:{HOSTILE}"))}' in body
    )
    assert HOSTILE in text  # plain text says it as typed
