from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView

from factory import api as factory_api
from monitoring.api import views as api

api_v1 = [
    path("models", api.ModelListView.as_view(), name="models"),
    path("models/<slug:model>", api.ModelDetailView.as_view(), name="model"),
    path("models/<slug:model>/predictions", api.PredictionIngestView.as_view(), name="predictions"),
    path("models/<slug:model>/outcomes", api.OutcomeIngestView.as_view(), name="outcomes"),
    path("models/<slug:model>/quarantine", api.QuarantineListView.as_view(), name="quarantine"),
    path(
        "models/<slug:model>/quarantine.csv",
        api.QuarantineDownloadView.as_view(),
        name="quarantine-csv",
    ),
    path(
        "models/<slug:model>/quarantine.ndjson",
        api.QuarantineNdjsonView.as_view(),
        name="quarantine-ndjson",
    ),
    path(
        "models/<slug:model>/quarantine/<int:pk>/resubmit",
        api.QuarantineResubmitView.as_view(),
        name="quarantine-resubmit",
    ),
    path("models/<slug:model>/metrics", api.MetricsView.as_view(), name="metrics"),
    path("models/<slug:model>/drift", api.DriftView.as_view(), name="drift"),
    path("models/<slug:model>/compare", api.CompareView.as_view(), name="compare"),
    path("models/<slug:model>/sensitivity", api.SensitivityView.as_view(), name="sensitivity"),
    path("models/<slug:model>/alert-rules", api.AlertRuleListView.as_view(), name="alert-rules"),
    path(
        "models/<slug:model>/alert-rules/<int:pk>",
        api.AlertRuleDetailView.as_view(),
        name="alert-rule",
    ),
    path(
        "models/<slug:model>/alert-rules/<int:pk>/evaluations",
        api.AlertEvaluationListView.as_view(),
        name="alert-rule-evaluations",
    ),
    path("models/<slug:model>/webhooks", api.WebhookListView.as_view(), name="webhooks"),
    path("models/<slug:model>/webhooks/<int:pk>", api.WebhookDetailView.as_view(), name="webhook"),
    path("alerts", api.AlertListView.as_view(), name="alerts"),
    path("models/<slug:model>/versions", factory_api.VersionListView.as_view(), name="versions"),
    path(
        # `path`: a version name may hold "/" (such as "2026/03").
        "models/<slug:model>/versions/<path:version>",
        factory_api.VersionDetailView.as_view(),
        name="version",
    ),
    path("models/<slug:model>/gates", factory_api.GatesView.as_view(), name="gates"),
    path("models/<slug:model>/rollouts", factory_api.RolloutListView.as_view(), name="rollouts"),
    path(
        "models/<slug:model>/rollouts/rollback",
        factory_api.RollbackView.as_view(),
        name="rollback",
    ),
    path("models/<slug:model>/routing", factory_api.RoutingView.as_view(), name="routing"),
    path("models/<slug:model>/audit", factory_api.AuditView.as_view(), name="audit"),
    path(
        "models/<slug:model>/retrain-requests",
        factory_api.RetrainRequestListView.as_view(),
        name="retrain-requests",
    ),
    path(
        "models/<slug:model>/retrain-settings",
        factory_api.RetrainSettingsView.as_view(),
        name="retrain-settings",
    ),
    path(
        "alerts/<int:pk>/acknowledge", api.AlertAcknowledgeView.as_view(), name="alert-acknowledge"
    ),
    path("alerts/<int:pk>/silence", api.AlertSilenceView.as_view(), name="alert-silence"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("api/v1/", include((api_v1, "api"))),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api:schema"), name="api-docs"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("dashboard.urls")),
]
