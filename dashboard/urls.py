from django.urls import path

from dashboard.views import alerts as alert_pages
from dashboard.views import business as business_pages
from dashboard.views import channels as channel_pages
from dashboard.views import compare as compare_pages
from dashboard.views import factory as factory_pages
from dashboard.views import features
from dashboard.views import model as dashboard
from dashboard.views import outbox as outbox_pages
from dashboard.views import quarantine as quarantine_pages
from dashboard.views import rules as rule_pages
from dashboard.views import why as why_pages

app_name = "dashboard"
urlpatterns = [
    path("", dashboard.overview, name="overview"),
    path("models/<slug:name>/", dashboard.model_page, name="model"),
    path("models/<slug:name>/rules/", dashboard.rule_create, name="rule-create"),
    path("models/<slug:name>/business/", business_pages.business, name="business"),
    path("models/<slug:name>/business.csv", business_pages.business_csv, name="business-csv"),
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
    # `path`: a version name may hold "/" (such as "2026/03").
    path("models/<slug:name>/versions/<path:version>/", factory_pages.version_page, name="version"),
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
        features.feature_page,
        name="feature",
    ),
]

# Compare versions, alerts, rules, quarantine repair and the slice comparison.
urlpatterns += [
    path("models/<slug:name>/compare/", compare_pages.compare_page, name="compare"),
    path("models/<slug:name>/why/", why_pages.why_page, name="why"),
    path("alerts/", alert_pages.alerts_page, name="alerts"),
    path("alerts/acknowledge", alert_pages.alerts_acknowledge_form, name="alerts-acknowledge"),
    path("models/<slug:name>/alerts/<int:pk>/", alert_pages.alert_page, name="alert"),
    path("models/<slug:name>/alerts/<int:pk>/act", alert_pages.alert_act, name="alert-act"),
    path(
        "models/<slug:name>/alerts/<int:pk>/unsilence",
        alert_pages.alert_silence_lift,
        name="alert-unsilence",
    ),
    path("models/<slug:name>/rules/new", rule_pages.rule_new, name="rule-new"),
    path("models/<slug:name>/rules/check", rule_pages.rule_check, name="rule-check-new"),
    path("models/<slug:name>/rules/<int:pk>/check", rule_pages.rule_check, name="rule-check"),
    path("models/<slug:name>/rules/<int:pk>/", rule_pages.rule_edit, name="rule-edit"),
    path("models/<slug:name>/rules/<int:pk>/delete", rule_pages.rule_delete, name="rule-delete"),
    path(
        "models/<slug:name>/quarantine/<int:pk>/",
        quarantine_pages.quarantine_record_page,
        name="quarantine-record",
    ),
    path(
        "models/<slug:name>/quarantine/<int:pk>/resubmit",
        quarantine_pages.quarantine_resubmit_form,
        name="quarantine-resubmit",
    ),
]

# Where a model's alerts go beside e-mail: Slack, PagerDuty, webhooks.
urlpatterns += [
    path("models/<slug:name>/channels/", channel_pages.channels_page, name="channels"),
    path("models/<slug:name>/channels/add", channel_pages.channel_add, name="channel-add"),
    path(
        "models/<slug:name>/channels/<int:pk>/remove",
        channel_pages.channel_remove,
        name="channel-remove",
    ),
]

# E-mails the embedded mode kept instead of sending.
urlpatterns += [
    path("outbox/", outbox_pages.outbox_page, name="outbox"),
    path("outbox/<int:pk>/", outbox_pages.outbox_email_page, name="outbox-email"),
]
