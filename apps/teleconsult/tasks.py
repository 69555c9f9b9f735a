"""Celery work of video consultations."""

from __future__ import annotations

from celery import shared_task

from .services.recording import purge_expired_recordings


@shared_task(acks_late=True, ignore_result=True)
def purge_recordings() -> int:
    """Delete the recordings past their retention (hourly, from the beat schedule)."""
    return purge_expired_recordings()
