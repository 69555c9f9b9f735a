"""Care coordination pages: plans."""

from django.urls import URLPattern, path

from .views_pending import pending

urlpatterns: list[URLPattern] = [
    path("care/plans/<int:pk>/", pending, name="plan"),
    path("clinic/patients/<int:patient_pk>/care-plans/", pending, name="patient_plans"),
    path("care/", pending, name="my_care"),
]
