"""Video consultations in FHIR: an Encounter of class VR (its row is in the records app) gets
the clinicians who attended, the appointment it fulfils and the call's length from here.

Registered on import (the app's `ready()` imports this module) with `register_encounter_extras`
of apps.records.fhir.clinical, so `to_fhir` and the bulk export's `encounter_lines` both give
them, identically.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from apps.records.fhir.clinical import EncounterExtras, register_encounter_extras

from .models import Attendance, Consultation, Seat


def call_minutes(started_at: dt.datetime | None, ended_at: dt.datetime | None) -> int | None:
    """The call's length in whole minutes (rounded), once it has ended."""
    if started_at is None or ended_at is None:
        return None
    return max(0, round((ended_at - started_at).total_seconds() / 60))


def encounter_extras(pks: Sequence[int]) -> dict[int, EncounterExtras]:
    """The consultations behind these encounters: two queries whatever their number."""
    calls = list(
        Consultation.objects.filter(encounter_id__in=pks).values_list(
            "pk", "encounter_id", "appointment__fhir_id", "started_at", "ended_at"
        )
    )
    if not calls:
        return {}
    clinicians: dict[int, list[int]] = {}
    attended = (
        Attendance.objects.filter(
            consultation_id__in=[call[0] for call in calls],
            seat=Seat.CLINICIAN,
            user__isnull=False,
            admitted_at__isnull=False,
        )
        .order_by("admitted_at", "pk")
        .values_list("consultation_id", "user_id")
    )
    for consultation_id, user_id in attended:
        clinicians.setdefault(consultation_id, []).append(user_id)
    return {
        encounter_id: EncounterExtras(
            participants=tuple(clinicians.get(pk, ())),
            appointment=str(appointment) if appointment is not None else "",
            minutes=call_minutes(started_at, ended_at),
        )
        for pk, encounter_id, appointment, started_at, ended_at in calls
    }


register_encounter_extras(encounter_extras)
