"""What follows a booking change: the people concerned are told (in-app, then email/SMS)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.notifications.models import Notification
from apps.notifications.services import Attachment, notify

from ..ics import place_of
from ..models import Appointment
from .slots import clinic_zone

TITLES = {
    "booked": lambda: _("Appointment booked: %(when)s"),
    "moved": lambda: _("Appointment moved to %(when)s"),
    "cancelled": lambda: _("Appointment cancelled: %(when)s"),
}


def _when(appointment: Appointment) -> str:
    local = appointment.starts_at.astimezone(clinic_zone())
    return date_format(local, "DATETIME_FORMAT")


def appointment_ref(appointment_id: int) -> str:
    """The notification `ref` of an appointment (its emails carry the .ics: see apps.py)."""
    return f"scheduling.appointment:{appointment_id}"


def appointment_attachments(notification: Notification) -> list[Attachment]:
    """The .ics of the appointment a notice is about (a move also cancels the old time).

    Registered for the "appointment" kind in `SchedulingConfig.ready()`; only for people the
    appointment concerns.
    """
    from ..ics import appointment_ics

    prefix = appointment_ref(0)[:-1]
    if not notification.ref.startswith(prefix) or not notification.ref[len(prefix) :].isdigit():
        return []
    appointment = (
        Appointment.objects.select_related("patient")
        .filter(pk=int(notification.ref[len(prefix) :]))
        .first()
    )
    if appointment is None:
        return []
    user = notification.user
    concerned = appointment.patient.user_id == user.pk or (
        appointment.participants.filter(user=user).exists()
    )
    if not concerned:
        return []
    files = [("appointment.ics", appointment_ics(appointment, user), "text/calendar")]
    if appointment.rescheduled_from_id is not None and appointment.is_active:
        old = Appointment.objects.get(pk=appointment.rescheduled_from_id)
        files.append(("cancelled.ics", appointment_ics(old, user), "text/calendar"))
    return files


def appointment_changed(appointment: Appointment, change: str, by: User) -> None:
    """Keep follow-up requests in step, then after commit a Celery task tells the people
    concerned (`notify_change`)."""
    from .follow_ups import link_booking, unlink_booking

    if change in ("booked", "moved"):
        link_booking(appointment)
    elif change in ("cancelled", "noshow"):
        unlink_booking(appointment)
    if change not in TITLES:  # arrivals, no-shows, fulfilment: nobody needs a message
        return
    from ..tasks import appointment_change_notice

    pk, by_pk = appointment.pk, by.pk
    transaction.on_commit(lambda: appointment_change_notice.delay(pk, change, by_pk))


def notify_change(appointment_id: int, change: str, by_id: int) -> int:
    """Notify the patient (always: their confirmation) and the clinicians, except the one who
    made the change; how many."""
    appointment = (
        Appointment.objects.select_related("patient__user", "type", "location")
        .filter(pk=appointment_id)
        .first()
    )
    title = TITLES.get(change)
    if appointment is None or title is None:
        return 0
    people: list[tuple[User, str]] = []
    patient_user = appointment.patient.user
    if patient_user is not None:
        people.append((patient_user, reverse("scheduling:appointment", args=[appointment.pk])))
    for participant in appointment.participants.select_related("user"):
        people.append((participant.user, reverse("scheduling:appointment", args=[appointment.pk])))
    sent = 0
    for user, link in people:
        # Staff know what they just did; a patient gets the confirmation (with its .ics).
        if user.pk == by_id and user != patient_user:
            continue
        sent += 1
        with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
            # May leave by SMS: the time and the kind of visit, no clinical detail.
            text = title() % {"when": _when(appointment)}
            notify(
                user,
                "appointment",
                text,
                f"{appointment.type.label} — {place_of(appointment)}",
                link,
                ref=appointment_ref(appointment.pk),
            )
    return sent
