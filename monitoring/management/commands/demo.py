from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.roles import Role, user_role_set
from monitoring.demo import DEMO_MODEL, demo_create
from monitoring.jobs import jobs_run

DEMO_USER = "demo"
DEMO_PASSWORD = "canary-demo"
VIEWER_USER = "viewer"
VIEWER_PASSWORD = "canary-viewer"


class Command(BaseCommand):
    help = "Create the demo model, its data and a demo login, then run the jobs."

    def handle(self, *args, **options):
        model = demo_create()
        if model is None:
            self.stdout.write(f"The demo model '{DEMO_MODEL}' exists; keeping its data.")
        else:
            self.stdout.write(f"Created the demo model '{DEMO_MODEL}' with four weeks of data.")
            report = jobs_run(model_id=model.pk)
            self.stdout.write(
                f"Jobs: {report.labels_written} labels joined, {report.hours_refreshed} hours "
                f"aggregated, {report.messages_sent} alert message(s) sent "
                "(one per model and channel, telling every change)."
            )
        users = get_user_model().objects
        if not users.filter(username=DEMO_USER).exists():
            admin = users.create_superuser(DEMO_USER, "demo@example.com", DEMO_PASSWORD)
            user_role_set(user=admin, role=Role.ADMIN)
        if not users.filter(username=VIEWER_USER).exists():
            viewer = users.create_user(VIEWER_USER, "viewer@example.com", VIEWER_PASSWORD)
            user_role_set(user=viewer, role=Role.VIEWER)
        admin_login = f"admin: {DEMO_USER} / {DEMO_PASSWORD}"
        viewer_login = f"read-only viewer: {VIEWER_USER} / {VIEWER_PASSWORD}"
        self.stdout.write(
            self.style.SUCCESS(
                f"\nDashboard: http://127.0.0.1:8000  {admin_login}  {viewer_login}\n"
            )
        )
