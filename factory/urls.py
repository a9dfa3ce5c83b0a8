"""The factory's API routes, included under /api/v1/ in the "api" namespace."""

from __future__ import annotations

from django.urls import path

from factory import api

urlpatterns = [
    path("models/<slug:model>/versions", api.VersionListView.as_view(), name="versions"),
    path(
        # `path`: a version name may hold "/" (such as "2026/03").
        "models/<slug:model>/versions/<path:version>",
        api.VersionDetailView.as_view(),
        name="version",
    ),
    path("models/<slug:model>/gates", api.GatesView.as_view(), name="gates"),
    path("models/<slug:model>/rollouts", api.RolloutListView.as_view(), name="rollouts"),
    path("models/<slug:model>/rollouts/rollback", api.RollbackView.as_view(), name="rollback"),
    path("models/<slug:model>/routing", api.RoutingView.as_view(), name="routing"),
    path("models/<slug:model>/audit", api.AuditView.as_view(), name="audit"),
    path(
        "models/<slug:model>/retrain-requests",
        api.RetrainRequestListView.as_view(),
        name="retrain-requests",
    ),
    path(
        "models/<slug:model>/retrain-settings",
        api.RetrainSettingsView.as_view(),
        name="retrain-settings",
    ),
]
