"""Monitoring's API routes, included under /api/v1/ in the "api" namespace."""

from __future__ import annotations

from django.urls import path

from monitoring.api import alerts, ingest, metrics, models, quarantine

MODEL = "models/<slug:model>"

urlpatterns = [
    path("models", models.ModelListView.as_view(), name="models"),
    path(MODEL, models.ModelDetailView.as_view(), name="model"),
    path(f"{MODEL}/predictions", ingest.PredictionIngestView.as_view(), name="predictions"),
    path(f"{MODEL}/outcomes", ingest.OutcomeIngestView.as_view(), name="outcomes"),
    path(f"{MODEL}/quarantine", quarantine.QuarantineListView.as_view(), name="quarantine"),
    path(
        f"{MODEL}/quarantine.csv",
        quarantine.QuarantineDownloadView.as_view(),
        name="quarantine-csv",
    ),
    path(
        f"{MODEL}/quarantine.ndjson",
        quarantine.QuarantineNdjsonView.as_view(),
        name="quarantine-ndjson",
    ),
    path(
        f"{MODEL}/quarantine/<int:pk>/resubmit",
        quarantine.QuarantineResubmitView.as_view(),
        name="quarantine-resubmit",
    ),
    path(f"{MODEL}/metrics", metrics.MetricsView.as_view(), name="metrics"),
    path(f"{MODEL}/drift", metrics.DriftView.as_view(), name="drift"),
    path(f"{MODEL}/compare", metrics.CompareView.as_view(), name="compare"),
    path(f"{MODEL}/explain", metrics.ExplainView.as_view(), name="explain"),
    path(f"{MODEL}/sensitivity", metrics.SensitivityView.as_view(), name="sensitivity"),
    path(f"{MODEL}/alert-rules", alerts.AlertRuleListView.as_view(), name="alert-rules"),
    path(f"{MODEL}/alert-rules/<int:pk>", alerts.AlertRuleDetailView.as_view(), name="alert-rule"),
    path(
        f"{MODEL}/alert-rules/<int:pk>/evaluations",
        alerts.AlertEvaluationListView.as_view(),
        name="alert-rule-evaluations",
    ),
    path(f"{MODEL}/webhooks", alerts.WebhookListView.as_view(), name="webhooks"),
    path(f"{MODEL}/webhooks/<int:pk>", alerts.WebhookDetailView.as_view(), name="webhook"),
    path("alerts", alerts.AlertListView.as_view(), name="alerts"),
    path(
        "alerts/<int:pk>/acknowledge",
        alerts.AlertAcknowledgeView.as_view(),
        name="alert-acknowledge",
    ),
    path("alerts/<int:pk>/silence", alerts.AlertSilenceView.as_view(), name="alert-silence"),
]
