"""`make demo`: the database, the demo model and its data, the jobs, the logins; a line per step.

What a newcomer reads before the server starts: each step as it happens (with a count while
the records go in), what the jobs found in words, where the alert e-mail went, and last the
dashboard's address and logins.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from accounts.roles import Role, user_role_set
from monitoring.demo import DEMO_MODEL, demo_create
from monitoring.jobs import jobs_run
from monitoring.models import Alert, AlertState, Label, OutboxEmail, Prediction

DEMO_USER = "demo"
DEMO_PASSWORD = "canary-demo"
VIEWER_USER = "viewer"
VIEWER_PASSWORD = "canary-viewer"
ADDRESS = "http://127.0.0.1:8000"
QUIET_LOGGERS = ("monitoring", "factory")  # their INFO lines repeat what the steps say


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


class Progress:
    """Writes each step on its own line; on a terminal, a step's count updates in place."""

    def __init__(self, out, *, live: bool):
        self.out, self.live, self.pending = out, live, ""

    def step(self, text: str) -> None:
        self.done()
        self.out.write(f"• {text}")

    def count(self, text: str) -> None:
        if self.live:
            self.out.write(f"\r\033[K  {text}", ending="")
            self.out.flush()
        self.pending = text

    def done(self) -> None:
        if self.pending and self.live:
            self.out.write("\r\033[K", ending="")
            self.out.flush()
        self.pending = ""


class Command(BaseCommand):
    help = "Set up the demo: database, the demo model with four weeks of data, jobs, logins."

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="start over: delete the embedded SQLite database first (nothing else)",
        )

    def handle(self, *args, reset: bool = False, **options):
        loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            self.steps(reset=reset)
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)

    def steps(self, *, reset: bool) -> None:
        progress = Progress(self.stdout, live=sys.stdout.isatty())
        if reset:
            self.database_delete(progress)
        progress.step("Preparing the database")
        call_command("migrate", interactive=False, verbosity=0)
        self.model_create(progress)
        self.users_create(progress)
        progress.done()
        self.welcome()

    def database_delete(self, progress: Progress) -> None:
        database = settings.DATABASES["default"]
        if database["ENGINE"] != "django.db.backends.sqlite3":
            raise CommandError(
                "--reset starts over the embedded SQLite database only; this one is "
                f"{database['ENGINE'].rsplit('.', 1)[-1]}: drop its tables yourself."
            )
        connections["default"].close()
        path = Path(database["NAME"])
        progress.step(f"Starting over: deleting {path.name}")
        for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            leftover.unlink(missing_ok=True)

    def model_create(self, progress: Progress) -> None:
        progress.step(f"Creating the demo model '{DEMO_MODEL}' with four weeks of traffic")
        last_before = OutboxEmail.objects.order_by("-pk").values_list("pk", flat=True).first()
        model = demo_create(progress=progress.count)
        if model is None:
            progress.step(
                f"The demo model '{DEMO_MODEL}' exists already: its data is kept "
                "(make demo-reset starts over)"
            )
            return
        predictions = Prediction.objects.filter(model=model).count()
        labelled = Label.objects.filter(model=model).count()
        progress.step(
            f"Stored {plural(predictions, 'prediction')}; {labelled:,} of them have their "
            "outcome so far (outcomes arrive 1 to 14 days late)"
        )
        progress.step("Running the jobs: evaluate the alert rules, send what they found")
        report = jobs_run(model_id=model.pk)
        firing = Alert.objects.filter(model=model, state=AlertState.FIRING).count()
        emails = OutboxEmail.objects.filter(pk__gt=last_before or 0)
        recipients = sorted({to for row in emails for to in row.to})
        progress.step(
            f"{plural(firing, 'alert')} firing, told in {plural(len(emails), 'e-mail')}"
            + (f" to {', '.join(recipients)}" if recipients else "")
        )
        for failure in report.failures:
            progress.step(self.style.ERROR(f"A job failed: {failure}"))

    def users_create(self, progress: Progress) -> None:
        progress.step("Creating the demo logins")
        users = get_user_model().objects
        if not users.filter(username=DEMO_USER).exists():
            admin = users.create_superuser(DEMO_USER, "demo@example.com", DEMO_PASSWORD)
            user_role_set(user=admin, role=Role.ADMIN)
        if not users.filter(username=VIEWER_USER).exists():
            viewer = users.create_user(VIEWER_USER, "viewer@example.com", VIEWER_PASSWORD)
            user_role_set(user=viewer, role=Role.VIEWER)

    def welcome(self) -> None:
        """The lines a newcomer needs, last: where to go and how to log in."""
        mail = (
            f"Alert e-mails are kept in the outbox: {ADDRESS}/outbox/"
            if settings.EMAIL_BACKEND.endswith("OutboxBackend")
            else f"Alert e-mails go through {settings.EMAIL_HOST}:{settings.EMAIL_PORT}"
        )
        lines = [
            "",
            self.style.SUCCESS(f"Canary's dashboard: {ADDRESS}"),
            f"  log in as {DEMO_USER} / {DEMO_PASSWORD} (admin)",
            f"  or as {VIEWER_USER} / {VIEWER_PASSWORD} (read-only)",
            f"  {mail}",
            "  Stop with Ctrl-C; `make demo-reset` starts over.",
            "",
        ]
        self.stdout.write("\n".join(lines))
