"""The Content-Security-Policy, in headless Chromium: every dashboard page works under it."""

from __future__ import annotations

import pytest

from accounts.roles import Role
from monitoring.demo import demo_create
from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertRule
from tests.dashboard.test_browser import SCREENSHOTS, log_in, page, user_make  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LISTEN = (
    "window.cspViolations = [];"
    "document.addEventListener('securitypolicyviolation', function (e) {"
    "  window.cspViolations.push("
    "    e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile + ':' + e.lineNumber);"
    "});"
)


def test_the_dashboard_pages_raise_no_csp_violation(live_server, page):  # noqa: F811
    # given: the demo, an alert and a rule to open
    model = demo_create()
    jobs_run(model_id=model.pk)
    user_make("ds", Role.EDITOR)
    alert, rule = Alert.objects.first(), AlertRule.objects.first()
    page.add_init_script(LISTEN)
    log_in(page, live_server)
    paths = [
        ("/", "#models"),
        ("/models/churn/", ".plot .main-svg"),
        ("/models/churn/business/", ".plot .main-svg"),
        ("/models/churn/compare/", "main"),
        ("/models/churn/features/tenure_months/", ".plot .main-svg"),
        ("/models/churn/rows/?labelled=yes", "#rows td"),
        ("/models/churn/quarantine/", "main"),
        (f"/models/churn/alerts/{alert.pk}/", ".plot .main-svg"),
        (f"/models/churn/rules/{rule.pk}/", "#rule-edit"),
        ("/alerts/", "main"),
        ("/models/churn/rows/?start=0001-01-01T00:00:00Z", "a[data-back]"),
    ]
    seen = {}
    for path, selector in paths:
        # when
        response = page.goto(live_server.url + path)
        page.wait_for_selector(selector)
        # then
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        seen[path] = page.evaluate("window.cspViolations")
    assert seen == {path: [] for path, _ in paths}
    # the bad-request page's own 400 is the only error the console shows
    assert [e for e in page.console_errors if "status of 400" not in e] == []


def test_an_inline_script_would_be_refused(live_server, page):  # noqa: F811
    # given: the policy the server sends
    user_make("ds", Role.EDITOR)
    page.add_init_script(LISTEN)
    log_in(page, live_server)
    # when: markup on a page tries to run inline code
    page.evaluate(
        "var s = document.createElement('script'); s.textContent = 'window.ran = 1';"
        "document.body.appendChild(s);"
    )
    # then: the browser refuses it
    assert page.evaluate("window.ran") is None
    assert any("script-src" in v for v in page.evaluate("window.cspViolations"))


def test_the_api_docs_render_offline_under_the_policy(live_server, page):  # noqa: F811
    # given: every request that gets an answer is watched (one the policy refuses never leaves)
    asked = []
    page.on("requestfinished", lambda request: asked.append(request.url))
    page.add_init_script(LISTEN)
    # when
    response = page.goto(live_server.url + "/api/docs/")
    # then: Redoc draws the operations from this server's files alone, with no violation
    page.wait_for_selector("h1:has-text('Canary API')")
    page.wait_for_selector("[data-section-id*='predictions']", state="attached")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # Redoc's own attribution logo points at its CDN: the policy keeps it out, the page is whole
    refused = [v for v in page.evaluate("window.cspViolations") if "redoc/logo" not in v]
    assert refused == []
    outside = [url for url in asked if not url.startswith((live_server.url, "blob:", "data:"))]
    assert outside == []
    page.screenshot(path=str(SCREENSHOTS / "api-docs.png"))
