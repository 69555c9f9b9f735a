"""Celery work of scheduling: notices after changes, waiting-list offers, reminders, follow-ups.

The periodic tasks run from `CELERY_BEAT_SCHEDULE`; each is idempotent (a second run, or a
second worker at the same time, does nothing more).
"""

from __future__ import annotations

from celery import shared_task

from .services.events import notify_change
from .services.follow_ups import mark_overdue
from .services.reminders import send_due_reminders
from .services.waiting_list import expire_offers, offer_time_of


@shared_task(acks_late=True, ignore_result=True)
def appointment_change_notice(appointment_id: int, change: str, by_id: int) -> int:
    return notify_change(appointment_id, change, by_id)


@shared_task(acks_late=True, ignore_result=True)
def offer_freed_time(appointment_id: int) -> int | None:
    entry = offer_time_of(appointment_id)
    return entry.pk if entry else None


@shared_task(acks_late=True, ignore_result=True)
def send_reminders() -> int:
    return send_due_reminders()


@shared_task(acks_late=True, ignore_result=True)
def expire_waiting_list_offers() -> int:
    return expire_offers()


@shared_task(acks_late=True, ignore_result=True)
def mark_follow_ups_overdue() -> int:
    return mark_overdue()
