from django.urls import path

from .views import alerts

urlpatterns = [
    path("clinic/alerts/", alerts.alerts, name="alerts"),
    path("clinic/alerts/<int:alert_id>/", alerts.alert, name="alert"),
]
