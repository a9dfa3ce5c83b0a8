from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from accounts.views import LoginView

api_v1 = [
    path("", include("monitoring.api.urls")),
    path("", include("factory.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("api/v1/", include((api_v1, "api"))),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api:schema"), name="api-docs"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("dashboard.urls")),
]

# Unrouted API paths and unhandled errors answer problem+json under /api/, pages elsewhere.
handler404 = "config.problems.not_found"
handler500 = "config.problems.server_error"
