"""What a patient does with the waiting list: join it, withdraw, take the time offered.

The offers themselves are made by `waiting_list.offer_time_of`. Taking an offer books the
offered time like any online booking (or moves the appointment the entry named), so every
rule and the no-double-booking guarantee apply; when the time was taken meanwhile, the entry
goes back to waiting for the next one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import PatientAccess, deny

from ..models import Appointment, AppointmentType, Schedule, WaitingListEntry
from . import SchedulingError
from .booking import access_for_booking, do_book_appointment, do_reschedule_appointment
from .slots import clinic_zone

OPEN_STATUSES = (WaitingListEntry.Status.WAITING, WaitingListEntry.Status.OFFERED)


def _audit(
    action: str, access: PatientAccess, entry: WaitingListEntry, request: HttpRequest | None
) -> None:
    audit(
        action,
        request=request,
        actor=access.user,
        obj=entry,
        patient_id=str(entry.patient_id),
        detail={"what": "waiting-list", "status": entry.status},
    )


def get_waiting_entry_for_user(
    user: User, entry_id: Any, *, request: HttpRequest | None = None
) -> tuple[WaitingListEntry, PatientAccess]:
    """The entry if `user` may act for its patient; 404 (audited) otherwise."""
    entry = (
        WaitingListEntry.objects.select_related("schedule__clinician", "type", "current")
        .filter(pk=entry_id)
        .first()
        if str(entry_id).isdigit()
        else None
    )
    if entry is None:
        raise deny(
            user,
            request=request,
            what="waiting-list",
            object_type="scheduling.waitinglistentry",
            object_id=entry_id,
        )
    return entry, access_for_booking(user, entry.patient_id, request=request)


def offer_is_open(entry: WaitingListEntry, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    return (
        entry.status == WaitingListEntry.Status.OFFERED
        and entry.offered_start is not None
        and entry.offer_expires_at is not None
        and entry.offer_expires_at > now
    )


@transaction.atomic
def do_join_waiting_list(
    access: PatientAccess,
    schedule: Schedule,
    appointment_type: AppointmentType,
    latest: dt.date,
    *,
    current: Appointment | None = None,
    request: HttpRequest | None = None,
) -> WaitingListEntry:
    """Wait for a time before the end of `latest` (clinic day) with that professional."""
    if not (appointment_type.active and appointment_type.patient_bookable):
        raise SchedulingError(_("This kind of appointment is booked by the clinic."))
    if not (schedule.active and schedule.appointment_types.filter(pk=appointment_type.pk).exists()):
        raise SchedulingError(
            _("%(name)s does not offer %(type)s.")
            % {"name": schedule.clinician.get_full_name(), "type": appointment_type.label}
        )
    now = timezone.now()
    ends = dt.datetime.combine(latest + dt.timedelta(days=1), dt.time(), tzinfo=clinic_zone())
    if ends <= now:
        raise SchedulingError(_("Choose a date in the future."))
    if current is not None:
        if current.patient_id != access.patient.pk or not current.is_active:
            raise SchedulingError(_("This appointment is no longer active."))
        # Earlier than the appointment held, or the entry makes no sense.
        ends = min(ends, current.starts_at)
        if ends <= now:
            raise SchedulingError(_("This appointment is too soon to move earlier."))
    duplicate = WaitingListEntry.objects.filter(
        patient=access.patient,
        schedule=schedule,
        type=appointment_type,
        status__in=OPEN_STATUSES,
    ).exists()
    if duplicate:
        raise SchedulingError(
            _("You are already on the waiting list for this professional and this kind of visit.")
        )
    entry = WaitingListEntry.objects.create(
        patient=access.patient,
        schedule=schedule,
        type=appointment_type,
        current=current,
        earliest=now,
        latest=ends,
    )
    _audit(Action.CREATE, access, entry, request)
    return entry


@transaction.atomic
def do_withdraw_waiting_entry(
    access: PatientAccess, entry: WaitingListEntry, *, request: HttpRequest | None = None
) -> WaitingListEntry:
    entry = WaitingListEntry.objects.select_for_update().get(pk=entry.pk, patient=access.patient)
    if entry.status not in OPEN_STATUSES:
        raise SchedulingError(_("This entry is no longer on the waiting list."))
    entry.status = WaitingListEntry.Status.WITHDRAWN
    entry.save(update_fields=["status"])
    _audit(Action.UPDATE, access, entry, request)
    return entry


def _back_to_waiting(entry: WaitingListEntry) -> None:
    entry.status = WaitingListEntry.Status.WAITING
    entry.offered_start = entry.offer_expires_at = None
    entry.save(update_fields=["status", "offered_start", "offer_expires_at"])


def do_accept_offer(
    access: PatientAccess, entry: WaitingListEntry, *, request: HttpRequest | None = None
) -> Appointment:
    """Book the offered time (or move the entry's appointment to it); the entry is booked.

    If the time was taken meanwhile, the entry waits again and the error is raised.
    """
    with transaction.atomic():
        entry = (
            WaitingListEntry.objects.select_for_update(of=("self",))
            .select_related("schedule__clinician", "type", "current")
            .get(pk=entry.pk, patient=access.patient)
        )
        if not offer_is_open(entry) or entry.offered_start is None:
            # An expired offer is left to `waiting_list.expire_offers`, which passes the time on.
            if entry.status == WaitingListEntry.Status.OFFERED:
                raise SchedulingError(_("This offer has expired."))
            raise SchedulingError(_("There is no offer to accept."))
        current = entry.current
        try:
            with transaction.atomic():
                if current is not None and current.is_active:
                    appointment = do_reschedule_appointment(
                        access, current, entry.offered_start, request=request
                    )
                else:
                    appointment = do_book_appointment(
                        access,
                        entry.type,
                        entry.offered_start,
                        [entry.schedule.clinician],
                        request=request,
                    )
        except SchedulingError as error:
            failure = error
            _back_to_waiting(entry)
        else:
            entry.status = WaitingListEntry.Status.BOOKED
            entry.save(update_fields=["status"])
        _audit(Action.UPDATE, access, entry, request)
        if entry.status == WaitingListEntry.Status.BOOKED:
            return appointment
    # Raised after the commit, so that the entry's return to the waiting list is kept.
    raise failure
