"""Care coordination pages: followup."""

from django.urls import URLPattern, path

from .views_pending import pending

urlpatterns: list[URLPattern] = [
    path("clinic/patients/<int:patient_pk>/follow-up/", pending, name="patient_followup"),
]
