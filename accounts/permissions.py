from __future__ import annotations

from rest_framework import permissions

from accounts.models import ApiKey, Scope


def key_allows_model(key: ApiKey, model_name: str) -> bool:
    allowed = {model.name for model in key.limited_to.all()}
    return not allowed or model_name in allowed


class HasScope(permissions.BasePermission):
    """API keys need the view's scope for the method (and the model, if limited).

    A logged-in dashboard user may call the GET endpoints.
    """

    message = "This API key lacks the scope for this call."

    def has_permission(self, request, view) -> bool:
        scope = view_scope(view, request.method)
        if isinstance(request.auth, ApiKey):
            if scope not in request.auth.scopes:
                self.message = f"This API key lacks the scope '{scope}'."
                return False
            model_name = view.kwargs.get("model")
            if model_name and not key_allows_model(request.auth, model_name):
                self.message = f"This API key may not touch the model '{model_name}'."
                return False
            return True
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        self.message = "Dashboard sessions may only read; use an API key to write."
        return request.method in permissions.SAFE_METHODS


def view_scope(view, method: str) -> str:
    scopes = getattr(view, "scopes", {})
    if method in scopes:
        return scopes[method]
    if method in permissions.SAFE_METHODS:
        return Scope.READ
    return scopes.get("write", Scope.FACTORY_WRITE)
