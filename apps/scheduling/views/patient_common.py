"""Shared by the patient's scheduling pages: whose record, slot rows grouped by day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from django.http import HttpRequest
from django.utils.formats import date_format

from apps.accounts.models import User
from apps.records.access import PatientAccess, deny, get_patient_for_user

from ..forms_patient import SlotChoice
from ..models import AppointmentType, Location, Schedule
from ..services.booking import access_for_booking
from ..services.slots import Slot, clinic_zone


def user_of(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def own_access(request: HttpRequest, what: str, *, read: bool = False) -> PatientAccess:
    """The signed-in patient's access to their own record; 404 (audited) for anyone else.

    `read=True` records the read (pages listing the patient's appointments).
    """
    user = user_of(request)
    record = getattr(user, "patient_record", None) if user.is_patient else None
    if record is None:
        raise deny(user, request=request, what=what)
    if read:
        return get_patient_for_user(user, record.pk, request=request, what=what)
    return access_for_booking(user, record.pk, request=request)


def slot_rows(
    found: Iterable[tuple[Slot, AppointmentType]],
    schedules: Mapping[int, Schedule],
) -> list[dict[str, Any]]:
    """Slots grouped by clinic day: [{day, label, slots: [row…]}], in time order.

    `schedules` must hold the slots' schedules with their clinicians; locations are read in one
    query.
    """
    found = sorted(found, key=lambda pair: (pair[0], pair[1].pk))
    location_ids = {slot.location_id for slot, _type in found if slot.location_id}
    locations = Location.objects.in_bulk(location_ids) if location_ids else {}
    zone = clinic_zone()
    days: list[dict[str, Any]] = []
    for slot, appointment_type in found:
        local = slot.starts_at.astimezone(zone)
        day = local.date()
        if not days or days[-1]["day"] != day:
            days.append({"day": day, "label": date_format(day, "l j F Y"), "slots": []})
        schedule = schedules.get(slot.schedule_id)
        days[-1]["slots"].append(
            {
                "token": SlotChoice.of(slot, appointment_type.pk).token,
                "starts_at": local,
                "ends_at": slot.ends_at.astimezone(zone),
                "clinician": schedule.clinician.get_full_name() if schedule else "",
                "type": appointment_type,
                "mode": slot.mode,
                "location": locations.get(slot.location_id) if slot.location_id else None,
            }
        )
    return days


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=clinic_zone())
