"""Care coordination pages: support."""

from django.urls import URLPattern, path

from .views_pending import pending

urlpatterns: list[URLPattern] = [
    path("clinic/patients/<int:patient_pk>/decision-support/", pending, name="patient_proposals"),
]
