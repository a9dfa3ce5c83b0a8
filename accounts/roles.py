"""Dashboard roles, as Django groups: viewer reads, editor also changes rules, silences and
versions, admin does everything. Superusers are admins; a user in no group is a viewer."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import models


class Role(models.IntegerChoices):
    VIEWER = 1, "viewer"
    EDITOR = 2, "editor"
    ADMIN = 3, "admin"


ROLE_GROUPS = {role.label: role for role in Role}


def user_role(user) -> Role | None:
    """The highest role of a logged-in user; None for anonymous users."""
    if user is None or not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.ADMIN
    cached = getattr(user, "_canary_role", None)
    if cached is None:
        names = user.groups.filter(name__in=ROLE_GROUPS).values_list("name", flat=True)
        cached = max((ROLE_GROUPS[name] for name in names), default=Role.VIEWER)
        user._canary_role = cached
    return cached


def user_has_role(user, role: Role) -> bool:
    current = user_role(user)
    return current is not None and current >= role


def role_required(role: Role = Role.VIEWER):
    """Page decorator: log in first, then 403 unless the user holds `role` or a higher one."""

    def decorate(view):
        @wraps(view)
        @login_required
        def checked(request, *args, **kwargs):
            if not user_has_role(request.user, role):
                raise PermissionDenied(f"This needs the {role.label} role.")
            return view(request, *args, **kwargs)

        return checked

    return decorate


def roles_create() -> list[str]:
    """Create the role groups that are missing; returns the names created."""
    created = []
    for name in ROLE_GROUPS:
        _, was_created = Group.objects.get_or_create(name=name)
        created += [name] if was_created else []
    return created


def user_role_set(*, user, role: Role) -> None:
    """Put a user in exactly one role group."""
    roles_create()
    user.groups.remove(*Group.objects.filter(name__in=ROLE_GROUPS))
    user.groups.add(Group.objects.get(name=role.label))
    user.__dict__.pop("_canary_role", None)
