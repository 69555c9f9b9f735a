"""Pages of remote monitoring: device registry, thresholds, alerts, dashboards."""

from django.urls import include, path

app_name = "devices"

urlpatterns = [
    path("", include("apps.devices.urls_registry")),
    path("", include("apps.devices.urls_alerts")),
    path("", include("apps.devices.urls_monitoring")),
    path("", include("apps.devices.urls_thresholds")),
]
