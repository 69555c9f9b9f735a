"""Celery tasks of the interop app: they call the export service and hold no logic."""

from __future__ import annotations

from celery import shared_task

from . import export


@shared_task(acks_late=True, ignore_result=True)
def run_export_task(job_id: str) -> None:
    """Run a Bulk Data export; a duplicate delivery finds the job claimed and does nothing."""
    export.run_export(job_id)


@shared_task(ignore_result=True)
def purge_expired_exports() -> int:
    """Hourly (beat): delete expired exports and their files."""
    return export.purge_expired()
