from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.roles import ROLE_GROUPS, roles_create, user_role_set


class Command(BaseCommand):
    help = "Create the viewer, editor and admin groups; optionally give a user one of them."

    def add_arguments(self, parser):
        parser.add_argument("--user", help="username to give a role")
        parser.add_argument("--role", choices=list(ROLE_GROUPS), default="viewer")

    def handle(self, *args, user=None, role="viewer", **options):
        created = roles_create()
        self.stdout.write(f"Role groups created: {', '.join(created) or 'none (all exist)'}")
        if user:
            found = get_user_model().objects.filter(username=user).first()
            if found is None:
                raise CommandError(f"There is no user named {user!r}.")
            user_role_set(user=found, role=ROLE_GROUPS[role])
            self.stdout.write(f"{user} is now {role}.")
