from django.urls import path

from monitoring import dashboard, drift_pages, factory_pages

app_name = "dashboard"
urlpatterns = [
    path("", dashboard.overview, name="overview"),
    path("models/<slug:name>/", dashboard.model_page, name="model"),
    path("models/<slug:name>/rules/", dashboard.rule_create, name="rule-create"),
    path("models/<slug:name>/business/", dashboard.business, name="business"),
    path("models/<slug:name>/business.csv", dashboard.business_csv, name="business-csv"),
    path("models/<slug:name>/rows/", dashboard.rows, name="rows"),
    path("models/<slug:name>/rows.csv", dashboard.rows_download, {"fmt": "csv"}, name="rows-csv"),
    path(
        "models/<slug:name>/rows.parquet",
        dashboard.rows_download,
        {"fmt": "parquet"},
        name="rows-parquet",
    ),
    path("models/<slug:name>/quarantine/", dashboard.quarantine, name="quarantine"),
    path("models/<slug:name>/quarantine.csv", dashboard.quarantine_csv, name="quarantine-csv"),
    path("models/<slug:name>/versions/", factory_pages.versions_page, name="versions"),
    path("models/<slug:name>/versions/<str:version>/", factory_pages.version_page, name="version"),
    path("models/<slug:name>/rollouts/", factory_pages.rollouts_page, name="rollouts"),
    path("models/<slug:name>/retrain/", factory_pages.retrain_page, name="retrain"),
    path("models/<slug:name>/audit/", factory_pages.audit_page, name="audit"),
    path(
        "models/<slug:name>/alerts/<int:pk>/acknowledge",
        dashboard.alert_acknowledge_form,
        name="alert-acknowledge",
    ),
    path(
        "models/<slug:name>/alerts/<int:pk>/silence",
        dashboard.alert_silence_form,
        name="alert-silence",
    ),
    # --- drift and data quality (feature page) ---
    path(
        "models/<slug:name>/features/<path:feature>/",
        drift_pages.feature_page,
        name="feature",
    ),
]
