"""What follows a booking change: the people concerned are told (in-app, then email/SMS)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.notifications.services import notify

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


def appointment_changed(appointment: Appointment, change: str, by: User) -> None:
    """After commit, a Celery task tells the people concerned (`notify_change`)."""
    if change not in TITLES:  # arrivals, no-shows, fulfilment: nobody needs a message
        return
    from ..tasks import appointment_change_notice

    pk, by_pk = appointment.pk, by.pk
    transaction.on_commit(lambda: appointment_change_notice.delay(pk, change, by_pk))


def notify_change(appointment_id: int, change: str, by_id: int) -> int:
    """Notify the patient and the clinicians, except whoever made the change; how many."""
    appointment = (
        Appointment.objects.select_related("patient__user", "type")
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
        if user.pk == by_id:
            continue
        sent += 1
        with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
            # May leave by SMS: the time and the kind of visit, no clinical detail.
            text = title() % {"when": _when(appointment)}
            notify(user, "appointment", text, appointment.type.label, link)
    return sent
