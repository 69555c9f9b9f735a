"""FHIR R4 API under /fhir/ (see apps/interop/fhir_api)."""

from django.urls import path, re_path

from .fhir_api import views

app_name = "interop"

TYPE = r"(?P<type_name>[A-Z][A-Za-z]+)"
ID = r"(?P<fhir_id>[A-Za-z0-9\-.]{1,64})"

urlpatterns = [
    path("fhir/metadata", views.capability, name="fhir-metadata"),
    re_path(rf"^fhir/{TYPE}/_search$", views.type_level, name="fhir-search"),
    re_path(rf"^fhir/{TYPE}/{ID}/_history/(?P<version>\d+)$", views.vread, name="fhir-vread"),
    re_path(rf"^fhir/{TYPE}/{ID}$", views.instance, name="fhir-instance"),
    re_path(rf"^fhir/{TYPE}$", views.type_level, name="fhir-type"),
]
