"""Follow-ups to book: a care plan (or a clinician) asks for a visit of some type by a date.

A request is `open` until an appointment of that type is booked for the patient on or before
the date (`link_booking`, called on every booking and move); when the date passes with nothing
booked it turns `overdue` and the requester is told (`mark_overdue`, a daily beat task). A
cancelled or missed appointment puts its request back to book. The clinic page
`scheduling:follow_ups` lists the open and overdue ones of the user's patients.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.notifications.services import notify
from apps.records.access import PatientAccess, deny, get_patient_for_user, patients_for_user

from ..models import ACTIVE_STATUSES, Appointment, AppointmentType, FollowUpRequest
from . import SchedulingError
from .slots import clinic_zone

Status = FollowUpRequest.Status
PENDING = (Status.OPEN, Status.OVERDUE)


def clinic_today(now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(clinic_zone()).date()


def _local_date(instant: dt.datetime) -> dt.date:
    return instant.astimezone(clinic_zone()).date()


def _day_after(day: dt.date) -> dt.datetime:
    """The first instant after `day` ends in the clinic's zone."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=clinic_zone())


def _pending_status(follow_up: FollowUpRequest) -> str:
    return Status.OVERDUE if follow_up.due_by < clinic_today() else Status.OPEN


def _fits(follow_up: FollowUpRequest, appointment: Appointment) -> bool:
    """An overdue request takes the first booking whenever it is; an open one, one in time."""
    if follow_up.status == Status.OVERDUE:
        return True
    return _local_date(appointment.starts_at) <= follow_up.due_by


@transaction.atomic
def do_request_follow_up(
    access: PatientAccess,
    appointment_type: AppointmentType,
    due_by: dt.date,
    clinician: User | None = None,
    note: str = "",
    *,
    request: HttpRequest | None = None,
) -> FollowUpRequest:
    """Ask for a follow-up of the patient to be booked by `due_by` (care team only).

    An appointment of that type already booked in time fulfils it at once.
    """
    if access.is_patient_self or access.user.role not in CLINICAL_ROLES or not access.clinical:
        raise SchedulingError(_("Only the care team asks for follow-ups."))
    if due_by < clinic_today():
        raise SchedulingError(_("This date is in the past."))
    if not appointment_type.active:
        raise SchedulingError(_("This kind of appointment can no longer be booked."))
    if clinician is not None and clinician.role not in CLINICAL_ROLES:
        raise SchedulingError(_("Choose a professional of the care team."))
    follow_up = FollowUpRequest(
        patient=access.patient,
        requested_by=access.user,
        type=appointment_type,
        clinician=clinician,
        due_by=due_by,
        note=note[:300],
    )
    follow_up.appointment = (
        Appointment.objects.filter(
            patient=access.patient,
            type=appointment_type,
            status__in=ACTIVE_STATUSES,
            starts_at__gte=timezone.now(),
            starts_at__lt=_day_after(due_by),
        )
        .exclude(follow_ups__status=Status.BOOKED)
        .order_by("starts_at")
        .first()
    )
    if follow_up.appointment is not None:
        follow_up.status = Status.BOOKED
    follow_up.save()
    audit(
        Action.CREATE,
        request=request,
        actor=access.user,
        obj=follow_up,
        patient_id=str(access.patient.pk),
        detail=access.audit_detail(
            what="follow-up",
            type=appointment_type.code,
            due_by=due_by.isoformat(),
            appointment=follow_up.appointment_id,
        ),
    )
    return follow_up


def link_booking(appointment: Appointment) -> FollowUpRequest | None:
    """The request this new (or moved) appointment fulfils, now marked booked; None if none.

    A move carries the link to the new time when it is still in time; otherwise the request
    is to book again (and may take another appointment).
    """
    if appointment.rescheduled_from_id is not None:
        for moved in FollowUpRequest.objects.select_for_update().filter(
            appointment_id=appointment.rescheduled_from_id, status=Status.BOOKED
        ):
            moved.status = _pending_status(moved)
            if _fits(moved, appointment):
                moved.appointment, moved.status = appointment, Status.BOOKED
                moved.save(update_fields=["appointment", "status"])
                return moved
            moved.appointment = None
            moved.save(update_fields=["appointment", "status"])
    candidates = (
        FollowUpRequest.objects.select_for_update()
        .filter(patient_id=appointment.patient_id, type_id=appointment.type_id, status__in=PENDING)
        .filter(Q(status=Status.OVERDUE) | Q(due_by__gte=_local_date(appointment.starts_at)))
        .order_by("due_by", "pk")
    )
    follow_up = candidates.first()
    if follow_up is None:
        return None
    follow_up.appointment, follow_up.status = appointment, Status.BOOKED
    follow_up.save(update_fields=["appointment", "status"])
    return follow_up


def unlink_booking(appointment: Appointment) -> int:
    """A cancelled or missed appointment: its request is to book again; how many."""
    reopened = 0
    for follow_up in FollowUpRequest.objects.select_for_update().filter(
        appointment=appointment, status=Status.BOOKED
    ):
        follow_up.appointment, follow_up.status = None, _pending_status(follow_up)
        follow_up.save(update_fields=["appointment", "status"])
        reopened += 1
    return reopened


def mark_overdue(today: dt.date | None = None) -> int:
    """Flag the open requests whose date has passed and tell each requester once; how many."""
    today = today or clinic_today()
    with transaction.atomic():
        due = list(
            FollowUpRequest.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=Status.OPEN, due_by__lt=today)
            .select_related("requested_by", "type")
            .order_by("pk")
        )
        if not due:
            return 0
        FollowUpRequest.objects.filter(pk__in=[f.pk for f in due]).update(status=Status.OVERDUE)
        link = reverse("scheduling:follow_ups")
        for follow_up in due:
            user = follow_up.requested_by
            if not user.is_active:
                continue
            with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
                # The patient's name stays on the page: this text may leave by email.
                notify(
                    user,
                    "care.task",
                    _("A follow-up was not booked in time"),
                    _("%(type)s, to book by %(date)s.")
                    % {
                        "type": follow_up.type.label,
                        "date": date_format(follow_up.due_by, "SHORT_DATE_FORMAT"),
                    },
                    link,
                )
    return len(due)


def follow_ups_for_user(user: User) -> QuerySet[FollowUpRequest]:
    """Open and overdue requests of the patients on the user's care teams, soonest first."""
    return (
        FollowUpRequest.objects.filter(patient__in=patients_for_user(user), status__in=PENDING)
        .select_related("patient", "type", "clinician", "requested_by")
        .order_by("due_by", "pk")
    )


def get_follow_up_for_user(
    user: User, follow_up_id: Any, *, request: HttpRequest | None = None
) -> tuple[FollowUpRequest, PatientAccess]:
    """The request if `user` may see its patient's record; 404 (audited) otherwise."""
    found = (
        FollowUpRequest.objects.filter(pk=follow_up_id).first()
        if str(follow_up_id).isdigit()
        else None
    )
    if found is None:
        raise deny(
            user,
            request=request,
            what="follow-up",
            object_type="scheduling.followuprequest",
            object_id=follow_up_id,
        )
    access = get_patient_for_user(
        user, found.patient_id, request=request, what="follow-up", action=None
    )
    return found, access


@transaction.atomic
def do_cancel_follow_up(
    access: PatientAccess, follow_up: FollowUpRequest, *, request: HttpRequest | None = None
) -> FollowUpRequest:
    """No longer needed (the care team decides so)."""
    if access.is_patient_self or access.user.role not in CLINICAL_ROLES:
        raise SchedulingError(_("Only the care team asks for follow-ups."))
    follow_up = FollowUpRequest.objects.select_for_update().get(
        pk=follow_up.pk, patient=access.patient
    )
    if follow_up.status not in PENDING:
        raise SchedulingError(_("This follow-up is no longer to book."))
    follow_up.status = Status.CANCELLED
    follow_up.save(update_fields=["status"])
    audit(
        Action.UPDATE,
        request=request,
        actor=access.user,
        obj=follow_up,
        patient_id=str(access.patient.pk),
        detail=access.audit_detail(what="follow-up", status=Status.CANCELLED),
    )
    return follow_up
