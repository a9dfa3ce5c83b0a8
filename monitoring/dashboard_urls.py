from django.urls import path

from monitoring import dashboard

app_name = "dashboard"
urlpatterns = [
    path("", dashboard.overview, name="overview"),
    path("models/<slug:name>/", dashboard.model_page, name="model"),
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
]
