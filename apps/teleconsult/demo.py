"""Demo video consultations (seed_demo; idempotent; after the records and scheduling demos).

- Marie Dubois (the demo patient) has a video follow-up with the demo physician today, a few
  minutes from now, its room ready: both can sign in and meet in the waiting room.
- She also had one three days ago: finished, with its Encounter (real start, end and
  duration), the two attendances and a short chat. No recording: a fake one would have to be
  made of sealed real bytes, and an empty one would mislead.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from apps.accounts.models import User
from apps.records.models import Encounter, Patient
from apps.scheduling.models import ACTIVE_STATUSES, Appointment, AppointmentType, Participant
from apps.scheduling.services.slots import clinic_zone

from .models import Attendance, ChatMessage, Consultation, Seat
from .services.rooms import room_for_appointment

VIDEO_TYPE = "video-follow-up"
CHAT = [
    (Seat.CLINICIAN, 2, "Bonjour Madame Dubois, vous m'entendez bien ?"),
    (Seat.PATIENT, 3, "Oui, très bien. Je vous envoie mes valeurs de tension de la semaine."),
    (Seat.PATIENT, 4, "Matin : 128/82 en moyenne, soir : 135/85."),
    (Seat.CLINICIAN, 15, "Merci. On garde le traitement, contrôle du labo dans un mois."),
]


def seed(context: dict[str, Any]) -> None:
    users: dict[str, User] = context["users"]
    physician, patient_user = users["physician"], users["patient"]
    patient = Patient.objects.filter(user=patient_user).first()
    video = AppointmentType.objects.filter(code=VIDEO_TYPE).first()
    if patient is None or video is None:
        return
    _seed_upcoming(patient, physician, video)
    _seed_finished(patient, physician, patient_user, video)


def _free(patient: Patient, clinician: User, starts_at: dt.datetime, ends_at: dt.datetime) -> bool:
    """Nothing active overlaps for either of them (the database would refuse it anyway)."""
    patient_busy = Appointment.objects.filter(
        patient=patient,
        status__in=ACTIVE_STATUSES,
        starts_at__lt=ends_at,
        ends_at__gt=starts_at,
    ).exists()
    clinician_busy = Participant.objects.filter(
        user=clinician, active=True, starts_at__lt=ends_at, ends_at__gt=starts_at
    ).exists()
    return not patient_busy and not clinician_busy


def _appointment(
    patient: Patient,
    clinician: User,
    video: AppointmentType,
    starts_at: dt.datetime,
    reason: str,
    status: str,
) -> Appointment:
    ends_at = starts_at + dt.timedelta(minutes=video.minutes)
    appointment = Appointment.objects.create(
        patient=patient,
        type=video,
        starts_at=starts_at,
        ends_at=ends_at,
        mode=video.mode,
        reason=reason,
        booked_by=clinician,
        status=status,
        created_at=min(timezone.now(), starts_at) - dt.timedelta(days=7),
    )
    Participant.objects.create(
        appointment=appointment, user=clinician, starts_at=starts_at, ends_at=ends_at
    )
    return appointment


def _seed_upcoming(patient: Patient, physician: User, video: AppointmentType) -> None:
    """A video appointment about ten minutes from now, with its room (kept by a later run:
    not "today's", which near midnight would be tomorrow's and made again)."""
    zone = clinic_zone()
    now = timezone.now()
    existing = (
        Appointment.objects.filter(
            patient=patient,
            mode=video.mode,
            status__in=ACTIVE_STATUSES,
            ends_at__gt=now,
            starts_at__lt=now + dt.timedelta(hours=12),
        )
        .order_by("starts_at")
        .first()
    )
    if existing is None:
        # The next quarter of an hour at least ten minutes away (the waiting room is open).
        start = (now + dt.timedelta(minutes=10)).astimezone(zone)
        start = start.replace(second=0, microsecond=0) + dt.timedelta(minutes=-start.minute % 15)
        length = dt.timedelta(minutes=video.minutes)
        for _attempt in range(8):
            if _free(patient, physician, start, start + length):
                existing = _appointment(
                    patient,
                    physician,
                    video,
                    start,
                    "Résultats de la prise de sang",
                    Appointment.Status.BOOKED,
                )
                break
            start += dt.timedelta(minutes=30)
    if existing is not None:
        room_for_appointment(existing)


def _seed_finished(
    patient: Patient, physician: User, patient_user: User, video: AppointmentType
) -> None:
    """A consultation held three days ago: Encounter, attendances and chat."""
    if Consultation.objects.filter(patient=patient, status=Consultation.Status.ENDED).exists():
        return
    zone = clinic_zone()
    day = timezone.now().astimezone(zone).date() - dt.timedelta(days=3)
    length = dt.timedelta(minutes=video.minutes)
    starts_at = None
    for hour in (14, 15, 16, 11):
        candidate = dt.datetime.combine(day, dt.time(hour), tzinfo=zone)
        if _free(patient, physician, candidate, candidate + length):
            starts_at = candidate
            break
    if starts_at is None:
        return
    appointment = _appointment(
        patient,
        physician,
        video,
        starts_at,
        "Suivi de l'hypertension",
        Appointment.Status.FULFILLED,
    )
    call_start = starts_at + dt.timedelta(minutes=1, seconds=20)
    call_end = starts_at + dt.timedelta(minutes=17, seconds=45)
    encounter = Encounter.objects.create(
        patient=patient,
        status=Encounter.Status.FINISHED,
        kind=Encounter.Kind.VIRTUAL,
        reason=appointment.reason,
        practitioner=physician,
        recorded_by=physician,
        recorded_at=call_start,
        started_at=call_start,
        ended_at=call_end,
    )
    consultation = Consultation.objects.create(
        patient=patient,
        appointment=appointment,
        reason=appointment.reason,
        status=Consultation.Status.ENDED,
        encounter=encounter,
        created_at=starts_at - dt.timedelta(minutes=5),
        started_at=call_start,
        ended_at=call_end,
        ended_by=physician,
    )
    seats = {
        Seat.CLINICIAN: Attendance.objects.create(
            consultation=consultation,
            seat=Seat.CLINICIAN,
            user=physician,
            display_name=physician.get_full_name(),
            first_seen_at=starts_at - dt.timedelta(minutes=2),
            admitted_at=starts_at - dt.timedelta(minutes=2),
            admitted_by=physician,
            last_left_at=call_end,
        ),
        Seat.PATIENT: Attendance.objects.create(
            consultation=consultation,
            seat=Seat.PATIENT,
            user=patient_user,
            display_name=patient_user.get_full_name(),
            first_seen_at=starts_at - dt.timedelta(minutes=4),
            admitted_at=call_start,
            admitted_by=physician,
            last_left_at=call_end,
        ),
    }
    for seat, minute, text in CHAT:
        ChatMessage.objects.create(
            consultation=consultation,
            attendance=seats[seat],
            sent_at=starts_at + dt.timedelta(minutes=minute),
            text=text,
        )
