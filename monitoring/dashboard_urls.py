from django.urls import path

from monitoring import dashboard

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
]
