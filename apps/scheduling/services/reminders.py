"""Appointment reminders (by default 24 h and 1 h before), sent once and never late.

`send_due_reminders` runs every five minutes (Celery beat). For each lead time of
`SCHEDULING_REMINDER_MINUTES` it takes the booked appointments whose reminder time has come,
and for each person concerned (the patient, the clinicians) first inserts the `Reminder` row,
whose unique key (appointment, person, lead time) lets only one run or worker through, then
notifies in the same transaction. A reminder whose time passed more than its window ago (the
workers were down), or that fell before the booking itself (booked 30 minutes ahead: the
confirmation was enough), is not sent.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Prefetch
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.notifications.services import notify

from ..ics import place_of
from ..models import Appointment, Participant, Reminder
from .slots import clinic_zone


def reminder_window(lead_minutes: int) -> dt.timedelta:
    """How late a reminder may still go out: an eighth of its lead, at least ten minutes."""
    return max(dt.timedelta(minutes=10), dt.timedelta(minutes=lead_minutes) / 8)


def due_appointments(lead_minutes: int, now: dt.datetime) -> list[Appointment]:
    """Booked appointments whose reminder of this lead time is due now (one or two queries)."""
    lead = dt.timedelta(minutes=lead_minutes)
    return list(
        Appointment.objects.filter(
            status=Appointment.Status.BOOKED,
            starts_at__gt=now + lead - reminder_window(lead_minutes),
            starts_at__lte=now + lead,
            created_at__lte=F("starts_at") - lead,
        )
        .select_related("patient__user", "type", "location")
        .prefetch_related(
            Prefetch(
                "participants",
                queryset=Participant.objects.filter(active=True).select_related("user"),
            )
        )
        .order_by("starts_at", "pk")
    )


def _people(appointment: Appointment) -> list[User]:
    people = [p.user for p in appointment.participants.all()]
    if appointment.patient.user is not None:
        people.insert(0, appointment.patient.user)
    return [user for user in people if user.is_active]


def _notify(user: User, appointment: Appointment) -> None:
    with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
        when = date_format(appointment.starts_at.astimezone(clinic_zone()), "DATETIME_FORMAT")
        # May leave by SMS: the time, the kind of visit and the place, no clinical detail.
        notify(
            user,
            "appointment",
            _("Reminder: appointment on %(when)s") % {"when": when},
            f"{appointment.type.label} — {place_of(appointment)}",
            reverse("scheduling:appointment", args=[appointment.pk]),
        )


def send_due_reminders(now: dt.datetime | None = None) -> int:
    """Send the reminders due now; how many were sent by this run."""
    now = now or timezone.now()
    sent = 0
    for lead_minutes in settings.SCHEDULING_REMINDER_MINUTES:
        appointments = due_appointments(lead_minutes, now)
        done = set(
            Reminder.objects.filter(
                appointment__in=appointments, lead_minutes=lead_minutes
            ).values_list("appointment_id", "user_id")
        )
        for appointment in appointments:
            for user in _people(appointment):
                if (appointment.pk, user.pk) in done:
                    continue
                with transaction.atomic():
                    try:
                        # The row first: a second run or worker stops here (unique key).
                        with transaction.atomic():
                            Reminder.objects.create(
                                appointment=appointment,
                                user=user,
                                lead_minutes=lead_minutes,
                                sent_at=now,
                            )
                    except IntegrityError:
                        continue
                    _notify(user, appointment)
                    sent += 1
    return sent
