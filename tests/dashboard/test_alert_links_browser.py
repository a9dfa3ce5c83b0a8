"""An alert e-mail's chart link, followed in headless Chromium: it opens the page in the rule's
window size, version and segment, at an element the page has for that kind of metric."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from accounts.roles import Role
from monitoring.demo import demo_create
from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertRule
from tests.dashboard import test_browser as browser
from tests.dashboard.test_browser import log_in, user_make

page, alert_links_here = browser.page, browser.alert_links_here
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def chart_links(message) -> dict[int, str]:
    """Each alert's chart link in the plain-text e-mail, by its rule's id."""
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    links = {}
    for block in text.split("\n----\n"):
        rule = re.search(r"^Rule: +\w+ #(\d+) ", block, re.M)
        links[int(rule.group(1))] = re.search(r"^Chart: (\S+)", block, re.M).group(1)
    return links


def picked(page, name: str) -> str:
    return page.eval_on_selector(f"#scope select[name={name}]", "select => select.value")


def test_an_alert_emails_chart_links_keep_the_rules_scope_and_land_on_their_chart(
    live_server, alert_links_here, smtp_server, page
):
    # given: the demo (versions 1.0.0 and 1.1.0, segments web and mobile, a drifting
    # tenure), with rules that watch one version, one segment, the outcomes and a drift
    model = demo_create()
    hourly = AlertRule.objects.create(
        model=model,
        metric="positive_rate",
        kind="static",
        upper=0.01,
        min_count=1,
        granularity="hour",
        version="1.1.0",
        segment="web",
    )
    outcomes = AlertRule.objects.create(
        model=model, metric="outcomes", kind="no_data", min_count=10**6, segment="mobile"
    )
    drift = AlertRule.objects.get(model=model, metric="drift:tenure_months")
    AlertRule.objects.filter(pk=drift.pk).update(version="1.1.0")
    user_make("ds", Role.EDITOR)
    # when the jobs run and tell the on-call by e-mail
    jobs_run(model_id=model.pk)
    rules = {hourly.pk: hourly, outcomes.pk: outcomes, drift.pk: drift}
    assert set(Alert.objects.filter(rule__in=rules).values_list("rule", flat=True)) == set(rules)
    ((_, message),) = smtp_server.messages
    links = chart_links(message)
    log_in(page, live_server)
    expected = {  # rule: (granularity, version, segment) the page's pickers must show
        hourly.pk: ("hour", "1.1.0", "web"),
        outcomes.pk: ("day", "", "mobile"),
        drift.pk: ("week", "1.1.0", "__all__"),
    }
    for pk, scope in expected.items():
        link = links[pk]
        assert link.startswith(live_server.url)
        # then the link opens the page with the rule's scope picked
        page.goto(link)
        page.wait_for_load_state("load")
        assert (picked(page, "granularity"), picked(page, "version"), picked(page, "segment")) == (
            scope
        )
        # and at an element the page has, which the page scrolls to
        anchor = urlsplit(link).fragment
        assert anchor and page.evaluate("id => document.getElementById(id) !== null", anchor)
        assert page.evaluate(
            "id => document.getElementById(id).classList.contains('focused')", anchor
        )
    assert "/features/tenure_months/" in links[drift.pk]
    assert page.console_errors == []
