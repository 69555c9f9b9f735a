"""The clinician's list of video consultations, and a consultation's summary after the call.

The summary belongs to the patient's record: it is shown to the patient and to clinicians with
clinical access to the record (`get_patient_for_user`), whether or not they took part; the
room itself is closed by then.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from apps.accounts.decorators import staff_required
from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import deny, get_patient_for_user
from apps.records.models import ClinicalNote, DocumentReference
from apps.records.views.common import paginate
from apps.scheduling.models import ACTIVE_STATUSES, Appointment, Mode
from apps.scheduling.services.slots import clinic_zone

from .models import Attendance, ChatMessage, Consultation, Recording

# How far ahead the list looks, from the start of today (clinic time).
LIST_DAYS = 7
LIST_PAGE_SIZE = 20
ADHOC_LIMIT = 20

# Waiting: in the room, neither let in nor turned away, and not gone again.
WAITING = Q(
    consultation__attendances__admitted_at__isnull=True,
    consultation__attendances__denied_at__isnull=True,
    consultation__attendances__last_left_at__isnull=True,
)


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _appointments(user: User, now: dt.datetime) -> QuerySet[Appointment]:
    today = dt.datetime.combine(now.astimezone(clinic_zone()).date(), dt.time(), clinic_zone())
    return (
        Appointment.objects.filter(
            participants__user=user,
            participants__active=True,
            mode=Mode.VIDEO,
            status__in=ACTIVE_STATUSES,
            ends_at__gte=today,
            starts_at__lt=today + dt.timedelta(days=LIST_DAYS),
        )
        .select_related("patient", "type", "consultation")
        .annotate(waiting=Count("consultation__attendances", filter=WAITING, distinct=True))
        .order_by("starts_at", "pk")
    )


def _adhoc_rooms(user: User) -> list[Consultation]:
    waiting = Q(
        attendances__admitted_at__isnull=True,
        attendances__denied_at__isnull=True,
        attendances__last_left_at__isnull=True,
    )
    return list(
        Consultation.objects.filter(
            opened_by=user,
            appointment__isnull=True,
            patient__isnull=False,  # a meeting's staff room is listed with its meeting
            status__in=[Consultation.Status.OPEN, Consultation.Status.LIVE],
        )
        .select_related("patient")
        .annotate(waiting=Count("attendances", filter=waiting, distinct=True))
        .order_by("-created_at")[:ADHOC_LIMIT]
    )


@staff_required
@require_GET
def consultations(request: HttpRequest) -> HttpResponse:
    """Today's and the coming days' video consultations of the clinician, with who is waiting."""
    user = _user(request)
    if not user.is_clinician:
        raise deny(user, request=request, what="consultations")
    now = timezone.now()
    page = paginate(request, _appointments(user, now), LIST_PAGE_SIZE)
    appointments: list[Any] = list(page.object_list)
    adhoc = _adhoc_rooms(user)
    for appointment in appointments:
        consultation = getattr(appointment, "consultation", None)
        appointment.room = consultation.room if consultation is not None else ""
        appointment.join_url = (
            reverse("teleconsult:room", args=[consultation.room])
            if consultation is not None
            else reverse("teleconsult:appointment", args=[appointment.pk])
        )
        appointment.is_now = appointment.starts_at <= now + dt.timedelta(minutes=15) and (
            appointment.ends_at >= now
        )
    # One row for the page (a constant cost), naming every patient it shows.
    audit(
        Action.READ,
        request=request,
        object_type="teleconsult.consultation",
        detail={
            "what": "consultations",
            "patients": sorted(
                {a.patient_id for a in appointments} | {c.patient_id for c in adhoc}
            ),
        },
    )
    context = {"page": page, "appointments": appointments, "adhoc": adhoc, "days": LIST_DAYS}
    return render(request, "teleconsult/consultations.html", context)


def duration_text(duration: dt.timedelta | None) -> str:
    """A call's length as people say it ("12 min 5 s"), or "" when it did not take place."""
    if duration is None:
        return ""
    seconds = int(duration.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    return _("%(minutes)d min %(seconds)d s") % {"minutes": minutes, "seconds": seconds}


@login_required
@require_GET
def summary(request: HttpRequest, room: str) -> HttpResponse:
    """Period, people, chat, recordings, snapshots and notes of one consultation."""
    user = _user(request)
    consultation = (
        Consultation.objects.select_related(
            "patient", "appointment", "appointment__type", "encounter", "opened_by", "ended_by"
        )
        .filter(room=room)
        .first()
        if len(room) <= 32
        else None
    )
    if consultation is None:
        raise deny(
            user,
            request=request,
            what="consultation-summary",
            object_type="teleconsult.consultation",
            object_id=room[:40],
        )
    access = get_patient_for_user(
        user, consultation.patient_id, request=request, what="consultation-summary", action=None
    )
    audit(
        Action.READ,
        request=request,
        obj=consultation,
        patient_id=str(consultation.patient_id),
        detail=access.audit_detail(what="consultation-summary"),
    )
    encounter = consultation.encounter
    documents: list[DocumentReference] = []
    notes: list[ClinicalNote] = []
    if encounter is not None:
        documents = list(
            access.visible(DocumentReference.objects.filter(encounter=encounter)).order_by(
                "recorded_at"
            )
        )
        if not access.is_patient_self:  # notes are read in the clinic's chart only
            notes = list(
                access.visible(ClinicalNote.objects.filter(encounter=encounter))
                .select_related("recorded_by")
                .order_by("signed_at")
            )
    recordings = list(
        Recording.objects.filter(consultation=consultation)
        .exclude(status=Recording.Status.DELETED)
        .select_related("started_by")
        .order_by("started_at")
    )
    for item in recordings:
        item.url = reverse("teleconsult:recording_download", args=[item.pk])  # type: ignore[attr-defined]
    base = reverse("teleconsult:room", args=[consultation.room])
    chat = list(
        ChatMessage.objects.filter(consultation=consultation)
        .select_related("attendance")
        .order_by("sent_at", "pk")
    )
    for line in chat:
        line.file_url = f"{base}chat/{line.pk}/file/" if line.storage_name else ""  # type: ignore[attr-defined]
    context = {
        "consultation": consultation,
        "access": access,
        "patient": consultation.patient,
        "is_patient_self": access.is_patient_self,
        "attendances": list(
            Attendance.objects.filter(consultation=consultation).order_by("first_seen_at", "pk")
        ),
        "duration": duration_text(consultation.duration),
        "chat": chat,
        "recordings": recordings,
        "documents": documents,
        "notes": notes,
        "chart_url": reverse("records:my_record")
        if access.is_patient_self
        else reverse("records:chart", args=[consultation.patient_id]),
        "timeline_url": reverse("records:my_timeline")
        if access.is_patient_self
        else reverse("records:timeline", args=[consultation.patient_id]),
    }
    return render(request, "teleconsult/summary.html", context)
