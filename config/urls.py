from __future__ import annotations

from csp.decorators import csp_replace
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from accounts.views import LoginView

api_v1 = [
    path("", include("monitoring.api.urls")),
    path("", include("factory.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

# Redoc styles what it draws with <style> elements it writes at run time (no hash can name them,
# and a hash in the list would void 'unsafe-inline') and searches in a web worker it starts from
# a blob: URL. Scripts stay this server's own.
api_docs = csp_replace(
    {"style-src": ["'self'", "'unsafe-inline'"], "worker-src": ["'self'", "blob:"]}
)(SpectacularRedocView.as_view(url_name="api:schema"))

urlpatterns = [
    path("api/v1/", include((api_v1, "api"))),
    path("api/docs/", api_docs, name="api-docs"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("dashboard.urls")),
]

# Unrouted API paths and unhandled errors answer problem+json under /api/, pages elsewhere.
handler404 = "config.problems.not_found"
handler500 = "config.problems.server_error"
