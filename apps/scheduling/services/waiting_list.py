"""The waiting list: time that frees up is offered to the patients waiting for it, in turn.

First come, first served: the oldest waiting entry that fits (same clinician and type, the
time within what the patient asked for) gets the offer, which holds for
`SCHEDULING_OFFER_MINUTES`; the slot itself stays free, so whoever books first gets it.
An offer not taken in time expires and the same time goes to the next patient waiting
(`expire_offers`, every five minutes).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from apps.notifications.services import notify

from ..models import Appointment, AppointmentType, Participant, WaitingListEntry
from .slots import available_for, clinic_zone, earliest_bookable


def offer_freed_time(appointment: Appointment) -> None:
    """After commit, a Celery task offers the freed time (`offer_time_of`)."""
    from ..tasks import offer_freed_time as task

    pk = appointment.pk
    transaction.on_commit(lambda: task.delay(pk))


@transaction.atomic
def offer_time_of(appointment_id: int) -> WaitingListEntry | None:
    """Offer the time a cancelled appointment freed to the first patient waiting for it."""
    appointment = Appointment.objects.filter(pk=appointment_id).first()
    if appointment is None or appointment.is_active:
        return None
    primary = appointment.participants.filter(role=Participant.Role.PRIMARY).first()
    if primary is None:
        return None
    return offer_time(
        primary.user_id,
        appointment.type_id,
        appointment.starts_at,
        exclude_patient_id=appointment.patient_id,
    )


@transaction.atomic
def offer_time(
    clinician_id: int,
    type_id: int,
    starts_at: dt.datetime,
    *,
    exclude_patient_id: int | None = None,
    now: dt.datetime | None = None,
) -> WaitingListEntry | None:
    """Offer a free start with this clinician to the first patient waiting for it (if any).

    Nothing is offered when the time is too close to book online or no longer free.
    """
    now = now or timezone.now()
    if starts_at < earliest_bookable(now):
        return None
    appointment_type = AppointmentType.objects.filter(pk=type_id, active=True).first()
    if appointment_type is None:
        return None
    if available_for([clinician_id], appointment_type, starts_at).get(clinician_id) is None:
        return None  # booked again meanwhile, or the clinician is away
    entries = (
        WaitingListEntry.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("patient__user")
        .filter(
            status=WaitingListEntry.Status.WAITING,
            schedule__clinician_id=clinician_id,
            type_id=type_id,
            earliest__lte=starts_at,
            latest__gte=starts_at,
        )
        .order_by("created_at", "pk")
    )
    if exclude_patient_id is not None:
        entries = entries.exclude(patient_id=exclude_patient_id)
    entry = entries.first()
    if entry is None:
        return None
    entry.status = WaitingListEntry.Status.OFFERED
    entry.offered_start = starts_at
    entry.offer_expires_at = min(
        now + dt.timedelta(minutes=settings.SCHEDULING_OFFER_MINUTES), starts_at
    )
    entry.save(update_fields=["status", "offered_start", "offer_expires_at"])
    user = entry.patient.user
    if user is not None:
        with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
            when = date_format(starts_at.astimezone(clinic_zone()), "DATETIME_FORMAT")
            notify(
                user,
                "appointment",
                _("An earlier appointment is free: %(when)s") % {"when": when},
                _("Book it before someone else does."),
                reverse("scheduling:waiting_list"),
            )
    return entry


def expire_offers(now: dt.datetime | None = None) -> int:
    """Offers not taken in time expire, and their time goes to the next patient waiting.

    Runs every five minutes (Celery beat); each entry is handled once even with two workers
    (rows locked, others skipped). Returns how many offers expired.
    """
    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic():
            entry = (
                WaitingListEntry.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("schedule")
                .filter(status=WaitingListEntry.Status.OFFERED, offer_expires_at__lte=now)
                .order_by("offer_expires_at", "pk")
                .first()
            )
            if entry is None:
                return expired
            entry.status = WaitingListEntry.Status.EXPIRED
            entry.save(update_fields=["status"])
            expired += 1
            if entry.offered_start is not None:
                offer_time(
                    entry.schedule.clinician_id,
                    entry.type_id,
                    entry.offered_start,
                    exclude_patient_id=entry.patient_id,
                    now=now,
                )
