"""Remote-monitoring pages: the clinicians' dashboard, a patient's monitoring tab (both portals)."""

from django.urls import path

from .views import monitoring

urlpatterns = [
    path("clinic/monitoring/", monitoring.dashboard, name="dashboard"),
    path(
        "clinic/patients/<int:pid>/monitoring/",
        monitoring.patient_monitoring,
        name="patient_monitoring",
    ),
    path("record/monitoring/", monitoring.patient_monitoring, name="my_monitoring"),
]
