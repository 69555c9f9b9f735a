"""Scheduling's FHIR types: Appointment and Schedule in the registry; Slot described here.

Appointment is in its patient's compartment (patient_path "patient"): `scope.py` shows it
exactly as that patient's record. Schedule holds no patient data: any caller with a Schedule
scope reads every schedule. Slots are computed, never stored, so they cannot be a registry type
(which serves rows): `slot_views.py` searches and reads them, and `SLOT` below only describes
them for the CapabilityStatement and the audit trail. Writes go through `/api/v1/` or the portal.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import Model, Prefetch, QuerySet
from django.db.models.lookups import In

from apps.records.models import CodeSystem
from apps.scheduling.fhir import (
    SYS_APPOINTMENT_TYPE,
    appointment_to_fhir,
    schedule_to_fhir,
    slot_to_fhir,
)
from apps.scheduling.models import Appointment, Participant, Schedule

from .registry import DATE, REFERENCE, TOKEN, ResourceType, SearchParam, register


def _uuids(values: Any, prefix: str) -> list[uuid.UUID]:
    found = []
    for value in values if isinstance(values, list | tuple | set) else [values]:
        try:
            found.append(uuid.UUID(str(value).removeprefix(prefix)))
        except ValueError:
            continue
    return found


class AppointmentsOfPractitioner(In):
    """`id__fhir_practitioner=<Practitioner fhir_id, or a list>`: appointments they take part in
    (one sub-select: no join that would repeat an appointment per participant)."""

    lookup_name = "fhir_practitioner"

    def get_prep_lookup(self) -> Any:
        taking_part = Participant.objects.filter(
            user__practitioner__fhir_id__in=_uuids(self.rhs, "Practitioner/")
        )
        self.rhs = taking_part.values("appointment_id").query
        return super().get_prep_lookup()


class SchedulesOffering(In):
    """`id__fhir_service_type=<appointment type code>`: schedules that offer the type."""

    lookup_name = "fhir_service_type"

    def get_prep_lookup(self) -> Any:
        codes = self.rhs if isinstance(self.rhs, list | tuple | set) else [self.rhs]
        offering = Schedule.appointment_types.through.objects.filter(
            appointmenttype__code__in=[str(c) for c in codes]
        )
        self.rhs = offering.values("schedule_id").query
        return super().get_prep_lookup()


Appointment._meta.get_field("id").register_lookup(AppointmentsOfPractitioner)
Schedule._meta.get_field("id").register_lookup(SchedulesOffering)


class AppointmentResourceType(ResourceType):
    """Appointments with their participants (and their Practitioners) in one extra query."""

    def queryset(self, model: type[Model]) -> QuerySet[Any]:
        people = Participant.objects.select_related("user__practitioner").order_by("role", "pk")
        return super().queryset(model).prefetch_related(Prefetch("participants", people))


LAST_UPDATED = SearchParam("_lastUpdated", DATE, ("updated_at",), sortable=True)
ID = SearchParam("_id", TOKEN, ("fhir_id",))
SERVICE_TYPE_DOC = f"An appointment type code ({SYS_APPOINTMENT_TYPE})."

register(
    AppointmentResourceType(
        "Appointment",
        (Appointment,),
        appointment_to_fhir,
        patient_path="patient",
        params={
            "_id": ID,
            "_lastUpdated": LAST_UPDATED,
            "patient": SearchParam(
                "patient", REFERENCE, ("patient__fhir_id",), targets=("Patient",)
            ),
            "practitioner": SearchParam(
                "practitioner",
                REFERENCE,
                ("id__fhir_practitioner",),
                targets=("Practitioner",),
                documentation="A professional taking part (Practitioner/<id>).",
            ),
            "date": SearchParam("date", DATE, ("starts_at",), sortable=True),
            "status": SearchParam("status", TOKEN, ("status",)),
            "service-type": SearchParam(
                "service-type",
                TOKEN,
                (f"={SYS_APPOINTMENT_TYPE}|type__code",),
                documentation=SERVICE_TYPE_DOC,
            ),
        },
        default_sort="-starts_at",
        select_related=("patient", "type", "location"),
        includes=("patient",),
    )
)
register(
    ResourceType(
        "Schedule",
        (Schedule,),
        schedule_to_fhir,
        patient_path=None,
        params={
            "_id": ID,
            "_lastUpdated": LAST_UPDATED,
            "actor": SearchParam(
                "actor",
                REFERENCE,
                ("clinician__practitioner__fhir_id",),
                targets=("Practitioner",),
            ),
            "active": SearchParam("active", TOKEN, ("active",)),
            "specialty": SearchParam(
                "specialty",
                TOKEN,
                (f"={CodeSystem.SNOMED}|specialty_code",),
                documentation="SNOMED CT specialty code.",
            ),
            "service-type": SearchParam(
                "service-type",
                TOKEN,
                (f"={SYS_APPOINTMENT_TYPE}|id__fhir_service_type",),
                documentation=SERVICE_TYPE_DOC,
            ),
        },
        select_related=("clinician__practitioner",),
        prefetch_related=("appointment_types",),
    )
)


# Not registered: a Slot has no row. Its search parameters, for the CapabilityStatement.
SLOT = ResourceType(
    "Slot",
    (),
    slot_to_fhir,  # given the computed slots of slot_views.py, never rows
    patient_path=None,
    params={
        "schedule": SearchParam(
            "schedule",
            REFERENCE,
            ("schedule",),
            targets=("Schedule",),
            documentation="Required: the Schedule whose free slots are computed.",
        ),
        "start": SearchParam(
            "start",
            DATE,
            ("start",),
            documentation="Required: a range (ge/gt and le/lt) of at most 31 days.",
        ),
        "service-type": SearchParam(
            "service-type",
            TOKEN,
            ("service_type",),
            documentation=SERVICE_TYPE_DOC + " Default: every type the schedule offers.",
        ),
        "status": SearchParam(
            "status", TOKEN, ("status",), documentation="Only free slots are served."
        ),
    },
)


def slot_capability(entry: dict[str, Any]) -> dict[str, Any]:
    """The CapabilityStatement entry of Slot: computed, so read and search only, no versions."""
    entry.update(
        interaction=[{"code": "read"}, {"code": "search-type"}],
        versioning="no-version",
        documentation=(
            "Free slots are computed from the schedules' availability, never stored: search "
            "needs `schedule` and a `start` range; a read of a slot that is no longer free is 404."
        ),
    )
    return entry
