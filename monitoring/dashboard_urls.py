from django.urls import path

from monitoring import dashboard

app_name = "dashboard"
urlpatterns = [
    path("", dashboard.overview, name="overview"),
    path("models/<slug:name>/", dashboard.model_page, name="model"),
]
