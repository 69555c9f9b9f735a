"""Pages of scheduling: booking (patients), agendas (staff), appointments, calendar feeds."""

from django.urls import include, path

app_name = "scheduling"

urlpatterns = [
    path("", include("apps.scheduling.urls_patient")),
    path("", include("apps.scheduling.urls_team")),
    path("", include("apps.scheduling.urls_feeds")),
]
