"""Rooms follow their appointments: a cancelled one closes its room's sockets.

Scheduling sits below teleconsult (apps depend downwards), so it cannot call into this app when
an appointment changes; it saves the appointment, and these receivers listen. They only send
live events (after the commit); access itself is decided afresh by `rooms.resolve_member` from
the appointment's status and participants on every connect and re-check.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from apps.scheduling.models import ACTIVE_STATUSES, Appointment, Participant

from .models import Consultation
from .services.rooms import room_changed, room_closed


def _open_consultation(appointment_id: int) -> Consultation | None:
    return (
        Consultation.objects.filter(appointment_id=appointment_id)
        .exclude(status__in=(Consultation.Status.ENDED, Consultation.Status.CANCELLED))
        .only("pk", "room", "status")
        .first()
    )


@receiver(post_save, sender=Appointment, dispatch_uid="teleconsult.appointment_saved")
def appointment_saved(sender: type[Appointment], instance: Appointment, **kwargs: Any) -> None:
    """Cancelled, no-show (or closed otherwise while the room is open): the sockets close."""
    if kwargs.get("created") or instance.status in ACTIVE_STATUSES:
        return
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and "status" not in update_fields:
        return
    consultation = _open_consultation(instance.pk)
    if consultation is not None:
        cancelled = instance.status in (Appointment.Status.CANCELLED, Appointment.Status.NOSHOW)
        room_closed(consultation, "cancelled" if cancelled else "ended")


@receiver(post_save, sender=Participant, dispatch_uid="teleconsult.participant_saved")
@receiver(post_delete, sender=Participant, dispatch_uid="teleconsult.participant_deleted")
def participant_changed(sender: type[Participant], instance: Participant, **kwargs: Any) -> None:
    """Someone joined or left the appointment: the room's sockets check their access again."""
    if kwargs.get("created"):
        return  # a new participant takes nobody's place
    consultation = _open_consultation(instance.appointment_id)
    if consultation is not None:
        room_changed(consultation)
