"""Celery work of scheduling: notices after changes, waiting-list offers."""

from __future__ import annotations

from celery import shared_task

from .services.events import notify_change
from .services.waiting_list import offer_time_of


@shared_task(acks_late=True, ignore_result=True)
def appointment_change_notice(appointment_id: int, change: str, by_id: int) -> int:
    return notify_change(appointment_id, change, by_id)


@shared_task(acks_late=True, ignore_result=True)
def offer_freed_time(appointment_id: int) -> int | None:
    entry = offer_time_of(appointment_id)
    return entry.pk if entry else None
