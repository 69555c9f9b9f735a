"""Booking, moving, cancelling and closing appointments.

Who may do what:
- a patient books, moves and cancels their own appointments, on the grid of free slots, for
  types open to online booking, until `SCHEDULING_PATIENT_CHANGE_HOURS` before;
- clinical staff with access to the patient's record (care team) book any start inside the
  clinicians' availability, joint appointments included, and change appointments at any time;
- nobody else (404).

No double booking: the schedules of the clinicians involved are locked (in primary-key order)
before the overlap checks, and on PostgreSQL exclusion constraints refuse what a race would
still let through; the loser gets `SlotTaken` with the next free slots.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import Level, PatientAccess, deny, get_patient_for_user

from ..models import ACTIVE_STATUSES, Appointment, AppointmentType, Participant, Schedule
from . import SchedulingError, SlotTaken
from .slots import Slot, available_for, clinic_zone, earliest_bookable, free_slots

ALTERNATIVES = 5


def _local(instant: dt.datetime) -> str:
    return date_format(instant.astimezone(clinic_zone()), "DATETIME_FORMAT")


def access_for_booking(
    user: User, patient_id: Any, *, request: HttpRequest | None = None
) -> PatientAccess:
    """The patient themself or clinical staff of their care team; 404 (audited) for others."""
    if not (user.is_patient or user.role in CLINICAL_ROLES):
        raise deny(user, request=request, what="appointments", object_id=patient_id)
    return get_patient_for_user(
        user, patient_id, request=request, need=Level.CLINICAL, what="appointments", action=None
    )


def get_appointment_for_user(
    user: User,
    appointment_id: Any,
    *,
    request: HttpRequest | None = None,
    action: str | None = "read",
) -> tuple[Appointment, PatientAccess]:
    """The appointment if `user` may see its patient's appointments (audited); 404 if not."""
    found = (
        Appointment.objects.select_related("patient", "type", "location")
        .filter(pk=appointment_id)
        .first()
        if str(appointment_id).isdigit()
        else None
    )
    if found is None:
        raise deny(
            user,
            request=request,
            what="appointment",
            object_type="scheduling.appointment",
            object_id=appointment_id,
        )
    try:
        access = access_for_booking(user, found.patient_id, request=request)
    except Http404:
        raise
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=found,
            patient_id=str(found.patient_id),
            detail=access.audit_detail(what="appointment"),
        )
    return found, access


def _check_clinicians(clinicians: Sequence[User], appointment_type: AppointmentType) -> None:
    if not clinicians:
        raise SchedulingError(_("Choose at least one professional."))
    if len({c.pk for c in clinicians}) != len(clinicians):
        raise SchedulingError(_("A professional is listed twice."))
    offered = set(
        Schedule.objects.filter(
            clinician__in=list(clinicians), active=True, appointment_types=appointment_type
        ).values_list("clinician_id", flat=True)
    )
    for clinician in clinicians:
        if appointment_type.professions and clinician.role not in appointment_type.professions:
            raise SchedulingError(
                _("%(name)s (%(role)s) does not deliver %(type)s.")
                % {
                    "name": clinician.get_full_name(),
                    "role": clinician.role_label,
                    "type": appointment_type.label,
                }
            )
        if clinician.pk not in offered:
            raise SchedulingError(
                _("%(name)s does not offer %(type)s.")
                % {"name": clinician.get_full_name(), "type": appointment_type.label}
            )


def alternatives_for(
    appointment_type: AppointmentType, clinician: User, after: dt.datetime
) -> list[Slot]:
    """The next free slots of the same clinician (within two weeks)."""
    schedule = Schedule.objects.filter(clinician=clinician).values_list("pk", flat=True).first()
    if schedule is None:
        return []
    return free_slots(
        appointment_type,
        after,
        after + dt.timedelta(days=14),
        schedules=[schedule],
        limit=ALTERNATIVES,
    )


def _patient_overlap(
    patient_id: int, starts_at: dt.datetime, ends_at: dt.datetime, ignore: int | None
) -> bool:
    found = Appointment.objects.filter(
        patient_id=patient_id,
        status__in=ACTIVE_STATUSES,
        starts_at__lt=ends_at,
        ends_at__gt=starts_at,
    )
    if ignore is not None:
        found = found.exclude(pk=ignore)
    return found.exists()


def _book(
    access: PatientAccess,
    appointment_type: AppointmentType,
    starts_at: dt.datetime,
    clinicians: Sequence[User],
    by: User,
    *,
    reason: str,
    replacing: Appointment | None,
    request: HttpRequest | None,
) -> Appointment:
    if timezone.is_naive(starts_at):
        raise SchedulingError(_("The time has no time zone."))
    by_patient = access.is_patient_self
    if not appointment_type.active:
        raise SchedulingError(_("This kind of appointment can no longer be booked."))
    if by_patient:
        if not appointment_type.patient_bookable:
            raise SchedulingError(_("This kind of appointment is booked by the clinic."))
        if len(clinicians) != 1:
            raise SchedulingError(_("Book one professional at a time."))
        if starts_at < earliest_bookable():
            raise SchedulingError(
                _("Online booking closes %(minutes)s minutes before the appointment.")
                % {"minutes": settings.SCHEDULING_MIN_NOTICE_MINUTES}
            )
    elif starts_at < timezone.now():
        raise SchedulingError(_("This time is in the past."))
    _check_clinicians(clinicians, appointment_type)
    ends_at = starts_at + dt.timedelta(minutes=appointment_type.minutes)
    # One booking at a time per clinician: later bookings wait here, then see this one.
    list(
        Schedule.objects.select_for_update()
        .filter(clinician__in=list(clinicians))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    primary = clinicians[0]
    if replacing is not None:  # its own time does not count against the new one
        Participant.objects.filter(appointment=replacing).update(active=False)
    available = available_for([c.pk for c in clinicians], appointment_type, starts_at)
    found = available[primary.pk]
    if by_patient and found is not None:
        grid = free_slots(appointment_type, starts_at, ends_at, schedules=[found.schedule_id])
        if not any(slot.starts_at == starts_at for slot in grid):
            available[primary.pk] = None
    missing = [c for c in clinicians if available[c.pk] is None]
    if missing:
        names = ", ".join(c.get_full_name() for c in missing)
        raise SlotTaken(
            _("%(names)s is not free at %(time)s.") % {"names": names, "time": _local(starts_at)},
            alternatives_for(appointment_type, primary, starts_at) if len(clinicians) == 1 else [],
        )
    if _patient_overlap(access.patient.pk, starts_at, ends_at, replacing.pk if replacing else None):
        raise SchedulingError(_("The patient already has an appointment at that time."))
    slot = available[primary.pk]
    assert slot is not None  # noqa: S101 - checked just above
    appointment = Appointment(
        patient=access.patient,
        type=appointment_type,
        starts_at=starts_at,
        ends_at=ends_at,
        mode=appointment_type.mode,
        location_id=slot.location_id,
        reason=reason[:300],
        booked_by=by,
        rescheduled_from=replacing,
    )
    try:
        with transaction.atomic():
            if replacing is not None:
                replacing.status = Appointment.Status.CANCELLED
                replacing.cancelled_at, replacing.cancelled_by = timezone.now(), by
                replacing.cancel_reason = _("Moved")
                replacing.save(
                    update_fields=["status", "cancelled_at", "cancelled_by", "cancel_reason"]
                )
            appointment.save()
            Participant.objects.bulk_create(
                [
                    Participant(
                        appointment=appointment,
                        user=clinician,
                        role=Participant.Role.PRIMARY if i == 0 else Participant.Role.SECONDARY,
                        starts_at=starts_at,
                        ends_at=ends_at,
                    )
                    for i, clinician in enumerate(clinicians)
                ]
            )
    except IntegrityError:
        # An exclusion constraint: a race the locks did not cover (the patient's other booking).
        raise SlotTaken(
            _("This time was just taken."), alternatives_for(appointment_type, primary, starts_at)
        ) from None
    audit(
        Action.UPDATE if replacing else Action.CREATE,
        request=request,
        actor=by,
        obj=appointment,
        patient_id=str(access.patient.pk),
        detail={
            "what": "appointment",
            "type": appointment_type.code,
            "starts_at": starts_at.isoformat(),
            "clinicians": [c.pk for c in clinicians],
            "moved_from": replacing.pk if replacing else None,
        },
    )
    from .events import appointment_changed

    appointment_changed(appointment, "moved" if replacing else "booked", by)
    if replacing is not None:
        from .waiting_list import offer_freed_time

        offer_freed_time(replacing)
    return appointment


@transaction.atomic
def do_book_appointment(
    access: PatientAccess,
    appointment_type: AppointmentType,
    starts_at: dt.datetime,
    clinicians: Sequence[User],
    *,
    reason: str = "",
    request: HttpRequest | None = None,
) -> Appointment:
    """Book; `clinicians[0]` is responsible, the others take part (joint appointment)."""
    return _book(
        access,
        appointment_type,
        starts_at,
        clinicians,
        access.user,
        reason=reason,
        replacing=None,
        request=request,
    )


def _check_patient_may_change(access: PatientAccess, appointment: Appointment) -> None:
    if not appointment.is_active:
        raise SchedulingError(_("This appointment is no longer active."))
    if access.is_patient_self:
        limit = appointment.starts_at - dt.timedelta(hours=settings.SCHEDULING_PATIENT_CHANGE_HOURS)
        if timezone.now() > limit:
            raise SchedulingError(
                _(
                    "Appointments can be changed online until %(hours)s hours before; "
                    "please call the clinic."
                )
                % {"hours": settings.SCHEDULING_PATIENT_CHANGE_HOURS}
            )


@transaction.atomic
def do_reschedule_appointment(
    access: PatientAccess,
    appointment: Appointment,
    starts_at: dt.datetime,
    *,
    request: HttpRequest | None = None,
) -> Appointment:
    """Move to a new time with the same clinicians: a new appointment replaces the old one."""
    appointment = Appointment.objects.select_for_update().get(
        pk=appointment.pk, patient=access.patient
    )
    _check_patient_may_change(access, appointment)
    clinicians = [
        p.user
        for p in appointment.participants.select_related("user").order_by("-role", "pk")
        if p.role == Participant.Role.PRIMARY
    ] + [
        p.user
        for p in appointment.participants.select_related("user").order_by("pk")
        if p.role != Participant.Role.PRIMARY
    ]
    return _book(
        access,
        appointment.type,
        starts_at,
        clinicians,
        access.user,
        reason=appointment.reason,
        replacing=appointment,
        request=request,
    )


@transaction.atomic
def do_cancel_appointment(
    access: PatientAccess,
    appointment: Appointment,
    *,
    reason: str = "",
    request: HttpRequest | None = None,
) -> Appointment:
    appointment = Appointment.objects.select_for_update().get(
        pk=appointment.pk, patient=access.patient
    )
    _check_patient_may_change(access, appointment)
    appointment.status = Appointment.Status.CANCELLED
    appointment.cancelled_at, appointment.cancelled_by = timezone.now(), access.user
    appointment.cancel_reason = reason[:300]
    appointment.save(update_fields=["status", "cancelled_at", "cancelled_by", "cancel_reason"])
    appointment.participants.update(active=False)
    audit(
        Action.UPDATE,
        request=request,
        actor=access.user,
        obj=appointment,
        patient_id=str(appointment.patient_id),
        detail={"what": "appointment", "status": "cancelled"},
    )
    from .events import appointment_changed
    from .waiting_list import offer_freed_time

    appointment_changed(appointment, "cancelled", access.user)
    offer_freed_time(appointment)
    return appointment


CLOSING: dict[str, tuple[str, ...]] = {
    Appointment.Status.ARRIVED: (Appointment.Status.BOOKED,),
    Appointment.Status.FULFILLED: (Appointment.Status.BOOKED, Appointment.Status.ARRIVED),
    Appointment.Status.NOSHOW: (Appointment.Status.BOOKED,),
}


@transaction.atomic
def do_set_status(
    access: PatientAccess,
    appointment: Appointment,
    status: str,
    *,
    request: HttpRequest | None = None,
) -> Appointment:
    """Staff mark arrival, the end of the appointment, or a no-show (once it has started)."""
    if access.is_patient_self or access.user.role == Role.PATIENT:
        raise SchedulingError(_("Only the clinic records arrivals and no-shows."))
    appointment = Appointment.objects.select_for_update().get(
        pk=appointment.pk, patient=access.patient
    )
    allowed_from = CLOSING.get(status)
    if allowed_from is None or appointment.status not in allowed_from:
        raise SchedulingError(
            _("An appointment that is %(current)s cannot become %(new)s.")
            % {
                "current": appointment.get_status_display(),
                "new": Appointment.Status(status).label
                if status in Appointment.Status.values
                else status,
            }
        )
    if status == Appointment.Status.NOSHOW and timezone.now() < appointment.starts_at:
        raise SchedulingError(_("A no-show can only be recorded once the appointment has begun."))
    appointment.status = status
    appointment.save(update_fields=["status"])
    if status == Appointment.Status.NOSHOW:
        appointment.participants.update(active=False)
    audit(
        Action.UPDATE,
        request=request,
        actor=access.user,
        obj=appointment,
        patient_id=str(appointment.patient_id),
        detail={"what": "appointment", "status": status},
    )
    from .events import appointment_changed

    appointment_changed(appointment, status, access.user)
    return appointment
