"""The waiting list: time that frees up is offered to the patients waiting for it, in turn.

First come, first served: the oldest waiting entry that fits (same clinician and type, the
time within what the patient asked for) gets the offer, which holds for
`SCHEDULING_OFFER_MINUTES`; the slot itself stays free, so whoever books first gets it.
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

from ..models import Appointment, Participant, WaitingListEntry
from .slots import clinic_zone, earliest_bookable


def offer_freed_time(appointment: Appointment) -> None:
    """After commit, a Celery task offers the freed time (`offer_time_of`)."""
    from ..tasks import offer_freed_time as task

    pk = appointment.pk
    transaction.on_commit(lambda: task.delay(pk))


@transaction.atomic
def offer_time_of(appointment_id: int) -> WaitingListEntry | None:
    """Offer the time a cancelled appointment freed to the first patient waiting for it."""
    appointment = Appointment.objects.filter(pk=appointment_id).first()
    if appointment is None or appointment.is_active or appointment.starts_at < earliest_bookable():
        return None
    primary = appointment.participants.filter(role=Participant.Role.PRIMARY).first()
    if primary is None:
        return None
    entry = (
        WaitingListEntry.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("patient__user")
        .filter(
            status=WaitingListEntry.Status.WAITING,
            schedule__clinician_id=primary.user_id,
            type_id=appointment.type_id,
            earliest__lte=appointment.starts_at,
            latest__gte=appointment.starts_at,
        )
        .exclude(patient_id=appointment.patient_id)
        .order_by("created_at", "pk")
        .first()
    )
    if entry is None:
        return None
    now = timezone.now()
    entry.status = WaitingListEntry.Status.OFFERED
    entry.offered_start = appointment.starts_at
    entry.offer_expires_at = min(
        now + dt.timedelta(minutes=settings.SCHEDULING_OFFER_MINUTES), appointment.starts_at
    )
    entry.save(update_fields=["status", "offered_start", "offer_expires_at"])
    user = entry.patient.user
    if user is not None:
        with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
            when = date_format(appointment.starts_at.astimezone(clinic_zone()), "DATETIME_FORMAT")
            notify(
                user,
                "appointment",
                _("An earlier appointment is free: %(when)s") % {"when": when},
                _("Book it before someone else does."),
                reverse("scheduling:waiting_list"),
            )
    return entry
