from __future__ import annotations

from rest_framework import permissions

from accounts.models import ApiKey, Scope
from accounts.roles import Role, user_has_role, user_role


def key_allows_model(key: ApiKey, model_name: str) -> bool:
    allowed = {model.name for model in key.limited_to.all()}
    return not allowed or model_name in allowed


def key_is_limited(key: ApiKey) -> bool:
    """A key limited to some models touches only those: it may not create another."""
    return bool(key.limited_to.all())


class HasScope(permissions.BasePermission):
    """API keys need the view's scope for the method (the model limit: factory.api_base).

    A logged-in dashboard user may call the GET endpoints, and the write methods a view
    grants to a role in `roles` (e.g. `roles = {"POST": Role.EDITOR}`) when the user holds it.
    """

    message = "This API key lacks the scope for this call."

    def has_permission(self, request, view) -> bool:
        scope = view_scope(view, request.method)
        if isinstance(request.auth, ApiKey):
            if scope not in request.auth.scopes:
                self.message = f"This API key lacks the scope '{scope}'."
                return False
            return True
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        needed = view_role(view, request.method)
        if needed is None:
            self.message = "Dashboard sessions may not make this call; use an API key."
            return False
        if not user_has_role(user, needed):
            role = user_role(user)
            self.message = f"This needs the {needed.label} role; you are a {role.label}."
            return False
        return True


def view_scope(view, method: str) -> str:
    scopes = getattr(view, "scopes", {})
    if method in scopes:
        return scopes[method]
    if method in permissions.SAFE_METHODS:
        return Scope.READ
    return scopes.get("write", Scope.FACTORY_WRITE)


def view_role(view, method: str) -> Role | None:
    """The role a session user needs for a write method; None: sessions may not."""
    return getattr(view, "roles", {}).get(method)
