"""FHIR R4 API under /fhir/ (see apps/interop/fhir_api)."""

from django.urls import path, re_path

from .fhir_api import slot_views, views

app_name = "interop"

TYPE = r"(?P<type_name>[A-Z][A-Za-z]+)"
ID = r"(?P<fhir_id>[A-Za-z0-9\-.]{1,64})"
JOB = r"(?P<job_id>[0-9a-f\-]{36})"

urlpatterns = [
    path("fhir/", views.root, name="fhir-root"),
    path("fhir/metadata", views.capability, name="fhir-metadata"),
    path(
        "fhir/.well-known/smart-configuration",
        views.smart_configuration,
        name="fhir-smart-configuration",
    ),
    re_path(r"^fhir/\$export$", views.export, {"level": "system"}, name="fhir-export"),
    re_path(
        r"^fhir/Patient/\$export$", views.export, {"level": "patient"}, name="fhir-export-patient"
    ),
    re_path(
        rf"^fhir/Group/{ID}/\$export$", views.export, {"level": "group"}, name="fhir-export-group"
    ),
    re_path(rf"^fhir/bulk/{JOB}$", views.export_status, name="fhir-export-status"),
    re_path(
        rf"^fhir/bulk/{JOB}/(?P<name>[A-Za-z]+-\d+\.ndjson)$",
        views.export_file,
        name="fhir-export-file",
    ),
    re_path(rf"^fhir/Patient/{ID}/\$everything$", views.everything, name="fhir-everything"),
    re_path(rf"^fhir/Binary/{ID}$", views.binary, name="fhir-binary"),
    # Slots are computed, not rows of the registry: their own views.
    re_path(r"^fhir/Slot(?:/_search)?$", slot_views.search, name="fhir-slot-search"),
    re_path(rf"^fhir/Slot/{ID}$", slot_views.read, name="fhir-slot"),
    re_path(rf"^fhir/{TYPE}/_search$", views.type_level, name="fhir-search"),
    re_path(rf"^fhir/{TYPE}/{ID}/_history/(?P<version>\d+)$", views.vread, name="fhir-vread"),
    re_path(rf"^fhir/{TYPE}/{ID}$", views.instance, name="fhir-instance"),
    re_path(rf"^fhir/{TYPE}$", views.type_level, name="fhir-type"),
]
