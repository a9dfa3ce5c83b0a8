"""The embedded mode's outbox: alert e-mails kept in the database and shown on the dashboard,
and `manage.py demo` telling a newcomer each step, where the e-mail went and how to log in."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils.html import escape

from accounts.roles import Role
from monitoring.jobs import jobs_run
from monitoring.metrics.registry import metric_label
from monitoring.models import OutboxEmail
from tests.dashboard.conftest import login  # noqa: F401 (a fixture)
from tests.monitoring.alerts.test_kinds import end_of_day, rule, traffic

pytestmark = pytest.mark.django_db
OUTBOX = "monitoring.alerts.transports.outbox.OutboxBackend"


@pytest.fixture
def outbox(settings):
    settings.EMAIL_BACKEND = OUTBOX
    settings.EMAIL_HOST = ""


def test_an_alert_email_is_kept_and_shown_as_sent(model, outbox, login):  # noqa: F811
    # given: a rule that fires, and no SMTP server
    rule(model, kind="static", lower=0.8)
    traffic(model, 0, n=50, correct=10)
    # when
    jobs_run(model_id=model.pk, now=end_of_day(0))
    # then: one e-mail in the outbox, as it would have gone out
    (kept,) = OutboxEmail.objects.all()
    assert kept.to == ["oncall@example.com"] and kept.subject.startswith("[Canary] churn")
    assert "Content-Type: multipart/alternative" in kept.message
    viewer = login(Role.VIEWER)
    listing = viewer.get("/outbox/").content.decode()
    assert escape(kept.subject) in listing and "oncall@example.com" in listing
    assert 'href="/outbox/"' in listing  # the top bar links the outbox in this mode
    page = viewer.get(f"/outbox/{kept.pk}/").content.decode()
    headline = f"Firing (warning): {metric_label('accuracy')} of churn is too low"
    assert headline in page  # in the plain text, and escaped inside the HTML frame's srcdoc
    srcdoc = re.search(r'<iframe[^>]*srcdoc="([^"]*)"', page)[1]
    assert "&lt;h2" in srcdoc and "<h2" not in srcdoc  # the e-mail's HTML cannot touch the page
    assert 'sandbox="' in page


def test_the_outbox_keeps_the_newest_messages_only(settings, outbox, monkeypatch):
    from django.core.mail import send_mail

    monkeypatch.setattr(OutboxEmail, "KEEP", 3)
    for i in range(5):
        send_mail(f"message {i}", "body", None, ["a@example.com"])
    assert list(OutboxEmail.objects.values_list("subject", flat=True)) == [
        "message 4",
        "message 3",
        "message 2",
    ]


def test_the_demo_tells_each_step_and_ends_with_the_address_and_logins(outbox):
    out = io.StringIO()
    call_command("demo", stdout=out)
    text = out.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    # a line per step, in words; no e-mail dump, no repr of a report
    assert "Content-Type" not in text and "<html" not in text and "Report(" not in text
    assert "• Creating the demo model 'churn'" in text
    assert re.search(r"6 alerts firing, told in 1 e-mail to oncall@example\.com", text)
    assert OutboxEmail.objects.count() == 1
    # the last lines: where to go, how to log in, where the e-mail is
    assert lines[-5:] == [
        "Canary's dashboard: http://127.0.0.1:8000",
        "  log in as demo / canary-demo (admin)",
        "  or as viewer / canary-viewer (read-only)",
        "  Alert e-mails are kept in the outbox: http://127.0.0.1:8000/outbox/",
        "  Stop with Ctrl-C; `make demo-reset` starts over.",
    ]
    # run again: the data is kept, and said so
    again = io.StringIO()
    call_command("demo", stdout=again)
    assert "exists already: its data is kept" in again.getvalue()


def test_demo_reset_refuses_any_database_but_the_embedded_one(settings, monkeypatch):
    monkeypatch.setitem(settings.DATABASES["default"], "ENGINE", "django.db.backends.postgresql")
    with pytest.raises(CommandError, match="embedded SQLite database only"):
        call_command("demo", "--reset", stdout=io.StringIO())


def test_an_email_reads_back_with_its_non_ascii_text(outbox):
    from django.core.mail import EmailMultiAlternatives

    from monitoring.alerts.transports.outbox import outbox_readable

    message = EmailMultiAlternatives("bounds", "mean ± 4 · ok", to=["a@example.com"])
    message.attach_alternative("<p>mean ± 4 · ok</p>", "text/html")
    message.send()
    readable = outbox_readable(OutboxEmail.objects.get())
    assert readable.text.strip() == "mean ± 4 · ok" and "<p>mean ± 4 · ok</p>" in readable.html
