"""Demo agendas: places, appointment types, weekly availability, a holiday, appointments.

Runs after the records demo (its patients and care teams). Idempotent: types, places and
schedules are updated in place; rules, the holiday and appointments are created once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from apps.accounts.models import Role, User
from apps.records.demo import PATIENTS
from apps.records.models import Patient

from .models import (
    Appointment,
    AppointmentType,
    AvailabilityException,
    AvailabilityRule,
    Location,
    Participant,
    Schedule,
)
from .services import SchedulingError
from .services.booking import access_for_booking, do_book_appointment
from .services.joint import joint_free_slots
from .services.slots import clinic_zone, free_slots

PHYSICIAN, NURSE, ALLIED = Role.PHYSICIAN.value, Role.NURSE.value, Role.ALLIED.value

# code: (French, English, German, minutes, mode, first visit, professions, patients may book)
TYPES: dict[str, tuple[str, str, str, int, str, bool, list[str], bool]] = {
    "first-visit": (
        "Première consultation",
        "First visit",
        "Erstkonsultation",
        45,
        "in_person",
        True,
        [PHYSICIAN],
        True,
    ),
    "follow-up": (
        "Consultation de suivi",
        "Follow-up visit",
        "Verlaufskontrolle",
        30,
        "in_person",
        False,
        [PHYSICIAN],
        True,
    ),
    "video-follow-up": (
        "Téléconsultation de suivi",
        "Video follow-up",
        "Video-Verlaufskontrolle",
        20,
        "video",
        False,
        [PHYSICIAN, NURSE],
        True,
    ),
    "nursing-video": (
        "Suivi infirmier en vidéo",
        "Nursing video visit",
        "Pflegekonsultation per Video",
        30,
        "video",
        False,
        [NURSE],
        True,
    ),
    "physiotherapy": (
        "Séance de physiothérapie",
        "Physiotherapy session",
        "Physiotherapie-Sitzung",
        45,
        "in_person",
        False,
        [ALLIED],
        True,
    ),
    "joint-physician-nurse": (
        "Consultation conjointe médecin et infirmière",
        "Joint visit, physician and nurse",
        "Gemeinsame Konsultation Arzt und Pflege",
        45,
        "in_person",
        False,
        [PHYSICIAN, NURSE],
        False,
    ),
}

# handle: (specialty, SNOMED CT code, types offered)
SCHEDULES: dict[str, tuple[str, str, list[str]]] = {
    "physician": (
        "Médecine interne générale",
        "419192003",
        ["first-visit", "follow-up", "video-follow-up", "joint-physician-nurse"],
    ),
    "nurse": (
        "Soins infirmiers",
        "",
        ["video-follow-up", "nursing-video", "joint-physician-nurse"],
    ),
    "physio": ("Physiothérapie", "", ["physiotherapy"]),
}

# handle: [(weekdays, from, until, mode, place key or None)]
RULES: dict[str, list[tuple[tuple[int, ...], str, str, str, str | None]]] = {
    "physician": [
        ((0, 1, 2, 3, 4), "08:00", "12:00", "in_person", "policlinic"),
        ((0, 2), "13:30", "17:00", "in_person", "policlinic"),
        ((1, 3), "14:00", "17:00", "video", None),
    ],
    "nurse": [
        ((0, 1, 2, 3, 4), "08:00", "12:00", "in_person", "policlinic"),
        ((0, 1, 2, 3, 4), "13:30", "16:00", "video", None),
    ],
    "physio": [
        ((0, 2, 4), "08:00", "12:00", "in_person", "physio"),
        ((0, 2, 4), "13:00", "17:00", "in_person", "physio"),
    ],
}

PLACES = {
    "policlinic": ("Policlinique du Léman, cabinet 2", "Rue du Lac 1, 1003 Lausanne"),
    "physio": ("Centre de physiothérapie, salle 1", "Rue du Lac 3, 1003 Lausanne"),
}

RULES_FROM = dt.date(2024, 1, 1)


def _time(text: str) -> dt.time:
    return dt.time.fromisoformat(text)


def seed(context: dict[str, Any]) -> None:
    users: dict[str, User] = context["users"]
    organization = context["organization"]
    places = {
        key: Location.objects.update_or_create(
            organization=organization, name=name, defaults={"address": address, "active": True}
        )[0]
        for key, (name, address) in PLACES.items()
    }
    types = {}
    for code, (fr, en, de, minutes, mode, first, professions, bookable) in TYPES.items():
        types[code], _created = AppointmentType.objects.update_or_create(
            code=code,
            defaults={
                "name": fr,
                "name_en": en,
                "name_de": de,
                "minutes": minutes,
                "mode": mode,
                "first_visit": first,
                "professions": professions,
                "patient_bookable": bookable,
                "active": True,
            },
        )
    schedules = {}
    for handle, (specialty, code, offered) in SCHEDULES.items():
        schedule, _created = Schedule.objects.update_or_create(
            clinician=users[handle], defaults={"specialty": specialty, "specialty_code": code}
        )
        schedule.appointment_types.add(*(types[c] for c in offered))
        schedules[handle] = schedule
        if not schedule.rules.exists():
            AvailabilityRule.objects.bulk_create(
                AvailabilityRule(
                    schedule=schedule,
                    weekday=weekday,
                    starts=_time(starts),
                    ends=_time(ends),
                    mode=mode,
                    location=places[place] if place else None,
                    valid_from=RULES_FROM,
                )
                for weekdays, starts, ends, mode, place in RULES[handle]
                for weekday in weekdays
            )
    _seed_holiday(schedules["physio"])
    patients = list(Patient.objects.filter(ahv_number__in=[p[0] for p in PATIENTS]).order_by("pk"))
    if patients and not Appointment.objects.filter(patient__in=patients).exists():
        _seed_appointments(users, types, patients)


def _seed_holiday(schedule: Schedule) -> None:
    """A week of holiday for the physiotherapist, starting in ten days."""
    if schedule.exceptions.filter(kind=AvailabilityException.Kind.HOLIDAY).exists():
        return
    zone = clinic_zone()
    first = dt.datetime.now(zone).date() + dt.timedelta(days=10)
    AvailabilityException.objects.create(
        schedule=schedule,
        starts_at=dt.datetime.combine(first, dt.time(0), tzinfo=zone),
        ends_at=dt.datetime.combine(first + dt.timedelta(days=5), dt.time(0), tzinfo=zone),
        kind=AvailabilityException.Kind.HOLIDAY,
        reason="Vacances",
    )


def _book(
    by: User,
    patient: Patient,
    appointment_type: AppointmentType,
    clinicians: list[User],
    days_ahead: int,
    reason: str,
) -> Appointment | None:
    """Book the first common free time from `days_ahead` days on (skipped if none)."""
    zone = clinic_zone()
    start = dt.datetime.combine(
        dt.datetime.now(zone).date() + dt.timedelta(days=days_ahead), dt.time(0), tzinfo=zone
    )
    end = start + dt.timedelta(days=7)
    if len(clinicians) == 1:
        found = free_slots(
            appointment_type,
            start,
            end,
            schedules=[Schedule.objects.get(clinician=clinicians[0]).pk],
            limit=1,
        )
        starts = [slot.starts_at for slot in found]
    else:
        starts = [
            slot.starts_at
            for slot in joint_free_slots(
                appointment_type, [c.pk for c in clinicians], start, end, limit=1
            )
        ]
    if not starts:
        return None
    try:
        access = access_for_booking(by, patient.pk)
        return do_book_appointment(access, appointment_type, starts[0], clinicians, reason=reason)
    except SchedulingError:
        return None


def _seed_appointments(
    users: dict[str, User], types: dict[str, AppointmentType], patients: list[Patient]
) -> None:
    physician, nurse, physio = users["physician"], users["nurse"], users["physio"]
    coordinator = users["coordinator"]
    plan = [
        (physician, 0, "follow-up", [physician], 1, "Contrôle tension artérielle"),
        (physician, 1, "video-follow-up", [physician], 2, "Résultats de laboratoire"),
        (coordinator, 0, "joint-physician-nurse", [physician, nurse], 3, "Éducation diabète"),
        (nurse, 2, "nursing-video", [nurse], 1, "Suivi des œdèmes"),
        (physician, 3, "first-visit", [physician], 4, "Asthme : bilan"),
        (physio, 1, "physiotherapy", [physio], 1, "Réhabilitation respiratoire"),
        (physician, 4, "follow-up", [physician], 8, "Suivi diabète"),
        (nurse, 5, "video-follow-up", [nurse], 9, "Contrôle INR"),
        (physio, 0, "physiotherapy", [physio], 5, "Renforcement"),
    ]
    for by, index, code, clinicians, days_ahead, reason in plan:
        if index < len(patients):
            _book(by, patients[index], types[code], clinicians, days_ahead, reason)
    # Past appointments: the booking service refuses the past, so they are written directly.
    zone = clinic_zone()
    today = dt.datetime.now(zone).date()
    past = [
        (0, "follow-up", physician, 7, 9, Appointment.Status.FULFILLED),
        (1, "video-follow-up", physician, 14, 15, Appointment.Status.FULFILLED),
        (2, "nursing-video", nurse, 6, 14, Appointment.Status.NOSHOW),
        (3, "follow-up", physician, 21, 10, Appointment.Status.FULFILLED),
    ]
    for index, code, clinician, days_ago, hour, status in past:
        if index >= len(patients):
            continue
        appointment_type = types[code]
        starts_at = dt.datetime.combine(
            today - dt.timedelta(days=days_ago), dt.time(hour), tzinfo=zone
        )
        ends_at = starts_at + dt.timedelta(minutes=appointment_type.minutes)
        location = (
            AvailabilityRule.objects.filter(schedule__clinician=clinician, mode="in_person").first()
            if appointment_type.mode == "in_person"
            else None
        )
        appointment = Appointment.objects.create(
            patient=patients[index],
            type=appointment_type,
            starts_at=starts_at,
            ends_at=ends_at,
            mode=appointment_type.mode,
            location=location.location if location else None,
            booked_by=clinician,
            created_at=starts_at - dt.timedelta(days=10),
        )
        Participant.objects.create(
            appointment=appointment,
            user=clinician,
            starts_at=starts_at,
            ends_at=ends_at,
            active=status != Appointment.Status.NOSHOW,
        )
        appointment.status = status
        appointment.save(update_fields=["status"])
