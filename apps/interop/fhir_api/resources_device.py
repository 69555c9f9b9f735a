"""Connected devices as FHIR Device (read and search only), and Observation's link to them.

A Device is in its patient's compartment (patient_path "patient"): `scope.py` shows it exactly
as that patient's record, and a device assigned to no patient to system callers only.
Registering, assigning and retiring devices stay in the portal and the CLI (`apps.devices`).

Observations store the device's public id ("dev-…"), not a key. Their querysets carry the
Device's fhir_id as the `device_fhir_id` annotation (`search.ANNOTATIONS`), so a page renders
`device.reference` without a query per row; `observation_to_fhir` looks it up for the one row a
write answers with. The `device` search parameter maps Device ids to device ids with the
`fhir_device` lookup below, which keeps it one indexed sub-select.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Case, CharField, Model, QuerySet, Value, When
from django.db.models.lookups import In

from apps.devices.models import Device
from apps.records import fhir as records_fhir
from apps.records.models import CodeSystem, Observation

from .registry import ResourceType


def _uuids(values: Any) -> list[uuid.UUID]:
    found = []
    for value in values if isinstance(values, list | tuple | set) else [values]:
        try:
            found.append(uuid.UUID(str(value).removeprefix("Device/")))
        except ValueError:
            continue
    return found


class DeviceByFhirId(In):
    """`device_id__fhir_device=<Device fhir_id, or a list>`: observations from those devices."""

    lookup_name = "fhir_device"

    def get_prep_lookup(self) -> Any:
        devices = Device.objects.filter(fhir_id__in=_uuids(self.rhs))
        self.rhs = devices.values("device_id").query
        return super().get_prep_lookup()


Observation._meta.get_field("device_id").register_lookup(DeviceByFhirId)


def observation_to_fhir(obj: Any) -> dict[str, Any]:
    """An Observation; its Device's id is looked up only when its queryset did not load it."""
    if obj.device_id and not hasattr(obj, "device_fhir_id"):
        devices = Device.objects.filter(device_id=obj.device_id)
        obj.device_fhir_id = devices.values_list("fhir_id", flat=True).first()
    return records_fhir.to_fhir(obj)


class DeviceType(ResourceType):
    """Device rows with their FHIR status and SNOMED CT type code, for the token searches."""

    def queryset(self, model: type[Model]) -> QuerySet[Any]:
        snomed = [
            When(kind=kind, then=Value(code))
            for kind, (code, _display) in records_fhir.DEVICE_SNOMED.items()
        ]
        return (
            super()
            .queryset(model)
            .annotate(
                fhir_status=Case(
                    When(status=Device.Status.RETIRED, then=Value("inactive")),
                    default=Value("active"),
                    output_field=CharField(),
                ),
                fhir_type=Case(*snomed, default=Value(""), output_field=CharField()),
            )
        )


DEVICE_TYPE_PATHS = (
    f"={records_fhir.SYS_DEVICE_KIND}|kind",
    f"={CodeSystem.SNOMED}|fhir_type",
)
