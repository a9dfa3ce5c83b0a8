"""Every endpoint under /models/<model>/ finds its model and checks the key's limit the same way."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver

from factory.api_base import ModelAPIView
from factory.services import model_create

pytestmark = pytest.mark.django_db


def api_patterns(resolver: URLResolver, prefix: str = "") -> list[tuple[str, URLPattern]]:
    found = []
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            found += api_patterns(entry, route)
        elif route.startswith("api/v1/"):
            found.append((route, entry))
    return found


MODEL_ROUTES = [
    (route, pattern) for route, pattern in api_patterns(get_resolver()) if "<slug:model>" in route
]


def test_every_model_route_stands_on_the_model_base_view():
    assert len(MODEL_ROUTES) > 20
    strays = [r for r, p in MODEL_ROUTES if not issubclass(p.callback.view_class, ModelAPIView)]
    assert strays == []


@pytest.mark.parametrize("route", [r for r, _ in MODEL_ROUTES])
def test_a_key_limited_to_another_model_is_refused_on_every_model_route(route, model, client_with):
    model_create(name="fraud", task="binary_classification")
    client = client_with("predictions:write", "outcomes:write", "read", models=("fraud",))
    url = "/" + route.replace("<slug:model>", "churn").replace("<int:pk>", "1")
    url = url.replace("<path:version>", "1.0.0")
    response = client.get(url)
    if response.status_code == 405:  # a write-only route: ask with its method
        response = client.post(url, {}, format="json")
    assert response.status_code == 403, url
    assert response.json()["detail"] == "This API key may not touch the model 'churn'."


def test_an_unknown_model_is_404_for_factory_and_monitoring_routes(writer):
    for url in ("/api/v1/models/nope/versions", "/api/v1/models/nope/metrics?metric=accuracy"):
        response = writer.get(url)
        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["detail"] == "There is no model named 'nope'."


def test_every_model_of_the_apps_says_what_it_is():
    ours = [
        m for m in apps.get_models() if m._meta.app_label in {"accounts", "factory", "monitoring"}
    ]
    assert ours
    default = [m.__name__ for m in ours if m.__str__ is models.Model.__str__]
    assert default == []
