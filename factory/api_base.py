"""What every API view about one model shares: the model from the URL, found and allowed once.

It lives in the factory, the lowest app that knows models, so that both the factory's and
monitoring's endpoints stand on it (monitoring imports the factory, never the reverse).
"""

from __future__ import annotations

from rest_framework.views import APIView

from accounts.models import ApiKey
from accounts.permissions import key_allows_model
from config.problems import ApiProblem
from factory.models import MLModel


def model_get_or_404(name: str) -> MLModel:
    model = MLModel.objects.filter(name=name).first()
    if model is None:
        raise ApiProblem(404, f"There is no model named {name!r}.")
    return model


def request_actor(request) -> str:
    """Who made a change: the API key's name, or the dashboard user."""
    if isinstance(request.auth, ApiKey):
        return f"key:{request.auth.name}"
    user = getattr(request, "user", None)
    return f"user:{user.get_username()}" if user and user.is_authenticated else ""


# An endpoint under /models/<model>/: `self.model` is set before the handler runs. The key's
# model limit is checked with the permissions (403, before throttling counts the call), and the
# model is looked up after them (404), so a key limited to other models learns nothing about
# which names exist. (Comments, not a docstring: drf-spectacular would publish it as every
# subclass's description.)
class ModelAPIView(APIView):
    model: MLModel

    def check_permissions(self, request) -> None:
        super().check_permissions(request)
        name = self.kwargs["model"]
        if isinstance(request.auth, ApiKey) and not key_allows_model(request.auth, name):
            self.permission_denied(
                request, message=f"This API key may not touch the model '{name}'."
            )

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        self.model = model_get_or_404(kwargs["model"])
