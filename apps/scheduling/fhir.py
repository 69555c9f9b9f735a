"""Scheduling as FHIR R4: Schedule, Slot and Appointment (read-only mappings).

Schedule                          Schedule (holds no patient data)
  clinician                       actor[0]: Practitioner/<id> when the user has one, with the
                                  account identifier and display name (display only otherwise)
  specialty_code / specialty      specialty[0]: SNOMED CT coding when coded, text
  appointment_types (active)      serviceType[]: SYS_APPOINTMENT_TYPE|code, display = label
  active / comment                active / comment
  (computed)                      planningHorizon: now .. now + SCHEDULING_SEARCH_DAYS days
Slot                              Slot (computed from the agenda, never stored)
  (schedule, type, start)         id "<schedule fhir_id hex>-<type pk>-<start, Unix seconds>"
  type                            serviceType[0], appointmentType (v2-0276 ROUTINE / FOLLOWUP)
  starts_at / ends_at             start / end; status is always `free`
Appointment                       Appointment (in the patient's compartment)
  status                          status (the same codes: proposed, booked, arrived, fulfilled,
                                  cancelled, noshow)
  type                            serviceType[0]; appointmentType (v2-0276); description = label
  mode                            extension appointment-mode (in_person | video)
  reason                          reasonCode[0].text (only callers who may open the patient's
                                  record ever see an Appointment)
  cancel_reason                   cancelationReason.text (when cancelled)
  starts_at / ends_at / minutes   start / end / minutesDuration
  created_at                      created
  patient                         participant: actor Patient/<id>, required, accepted
  participants                    participant: type PPRF (responsible) / SPRF (taking part),
                                  actor as for Schedule, required, accepted
  location                        participant: actor.display = the location's name
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone

from apps.records.fhir import CANONICAL, EXT, SYS_USER
from apps.records.fhir.helpers import _clean, _meta
from apps.records.models import CodeSystem

from .models import Appointment, AppointmentType, Schedule
from .services.slots import Slot

SYS_APPOINTMENT_TYPE = CANONICAL + "/CodeSystem/appointment-type"
V2_APPOINTMENT_REASON = "http://terminology.hl7.org/CodeSystem/v2-0276"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
MODE_EXTENSION = EXT + "appointment-mode"
PARTICIPANT_TYPE = {
    "primary": ("PPRF", "primary performer"),
    "secondary": ("SPRF", "secondary performer"),
}


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def service_type(appointment_type: AppointmentType) -> dict[str, Any]:
    return {
        "coding": [
            {
                "system": SYS_APPOINTMENT_TYPE,
                "code": appointment_type.code,
                "display": appointment_type.label,
            }
        ],
        "text": appointment_type.label,
    }


def appointment_type_concept(appointment_type: AppointmentType) -> dict[str, Any]:
    code, display = ("ROUTINE", "Routine appointment")
    if not appointment_type.first_visit:
        code, display = ("FOLLOWUP", "A follow up visit from a previous appointment")
    return {"coding": [{"system": V2_APPOINTMENT_REASON, "code": code, "display": display}]}


def practitioner_ref(user: Any) -> dict[str, Any]:
    """Practitioner/<id> when the user has one; their name (and account id) always."""
    try:
        practitioner = user.practitioner
    except ObjectDoesNotExist:
        practitioner = None
    return {
        "reference": f"Practitioner/{practitioner.fhir_id}" if practitioner else None,
        "identifier": {"system": SYS_USER, "value": str(user.pk)},
        "display": user.get_full_name(),
    }


def schedule_to_fhir(schedule: Schedule, now: dt.datetime | None = None) -> dict[str, Any]:
    now = (now or timezone.now()).replace(second=0, microsecond=0)
    specialty = None
    if schedule.specialty or schedule.specialty_code:
        coding = None
        if schedule.specialty_code:
            coding = [
                {
                    "system": CodeSystem.SNOMED,
                    "code": schedule.specialty_code,
                    "display": schedule.specialty,
                }
            ]
        specialty = [{"coding": coding, "text": schedule.specialty}]
    types = sorted((t for t in schedule.appointment_types.all() if t.active), key=lambda t: t.code)
    horizon = now + dt.timedelta(days=settings.SCHEDULING_SEARCH_DAYS)
    return _clean(
        {
            "resourceType": "Schedule",
            "id": str(schedule.fhir_id),
            "meta": _meta(schedule),
            "active": schedule.active,
            "serviceType": [service_type(t) for t in types],
            "specialty": specialty,
            "actor": [practitioner_ref(schedule.clinician)],
            "planningHorizon": {"start": _instant(now), "end": _instant(horizon)},
            "comment": schedule.comment,
        }
    )


@dataclass(frozen=True)
class FhirSlot:
    """A computed free slot with what its FHIR form names."""

    slot: Slot
    schedule_fhir_id: uuid.UUID
    type: AppointmentType

    @property
    def fhir_id(self) -> str:
        return slot_id(self.schedule_fhir_id, self.type.pk, self.slot.starts_at)


def slot_id(schedule_fhir_id: uuid.UUID, type_id: int, starts_at: dt.datetime) -> str:
    """Deterministic and decodable: the same free time always has the same id."""
    return f"{schedule_fhir_id.hex}-{type_id}-{int(starts_at.timestamp())}"


def parse_slot_id(value: str) -> tuple[uuid.UUID, int, dt.datetime] | None:
    """(schedule fhir_id, type pk, start) of a Slot id, or None when it is not one of ours."""
    parts = value.split("-")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    try:
        schedule = uuid.UUID(hex=parts[0])
        starts_at = dt.datetime.fromtimestamp(int(parts[2]), tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return schedule, int(parts[1]), starts_at


def slot_to_fhir(found: FhirSlot) -> dict[str, Any]:
    return _clean(
        {
            "resourceType": "Slot",
            "id": found.fhir_id,
            "serviceType": [service_type(found.type)],
            "appointmentType": appointment_type_concept(found.type),
            "schedule": {"reference": f"Schedule/{found.schedule_fhir_id}"},
            "status": "free",
            "start": _instant(found.slot.starts_at),
            "end": _instant(found.slot.ends_at),
        }
    )


def _participant(actor: dict[str, Any], kind: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"actor": actor, "required": "required", "status": "accepted"}
    if kind in PARTICIPANT_TYPE:
        code, display = PARTICIPANT_TYPE[kind]
        entry["type"] = [
            {"coding": [{"system": V3_PARTICIPATION, "code": code, "display": display}]}
        ]
    return entry


def appointment_to_fhir(appointment: Appointment) -> dict[str, Any]:
    """An Appointment; prefetch `participants` (with `user__practitioner`) for lists."""
    patient = appointment.patient
    people = sorted(appointment.participants.all(), key=lambda p: (p.role, p.pk))
    participants = [
        _participant(
            {
                "reference": f"Patient/{patient.fhir_id}",
                "display": f"{patient.given_names} {patient.family_name}".strip(),
            }
        ),
        *(_participant(practitioner_ref(p.user), p.role) for p in people),
    ]
    if appointment.location is not None:
        participants.append(_participant({"display": appointment.location.name}))
    kind = appointment.type
    cancelled = appointment.status == Appointment.Status.CANCELLED
    return _clean(
        {
            "resourceType": "Appointment",
            "id": str(appointment.fhir_id),
            "meta": _meta(appointment),
            "extension": [{"url": MODE_EXTENSION, "valueCode": appointment.mode}],
            "status": appointment.status,
            "cancelationReason": {"text": appointment.cancel_reason} if cancelled else None,
            "serviceType": [service_type(kind)],
            "appointmentType": appointment_type_concept(kind),
            "reasonCode": [{"text": appointment.reason}] if appointment.reason else None,
            "description": kind.label,
            "start": _instant(appointment.starts_at),
            "end": _instant(appointment.ends_at),
            "minutesDuration": int(
                (appointment.ends_at - appointment.starts_at).total_seconds() // 60
            ),
            "created": appointment.created_at.isoformat(),
            "participant": participants,
        }
    )
