"""Celery tasks of care coordination: small, idempotent, each calls one service."""

from __future__ import annotations

from celery import shared_task


@shared_task
def send_dose_reminders() -> int:
    """Plan the coming doses of active prescriptions, send the due reminders, mark missed."""
    from .services import reminders

    return reminders.run_reminders()


@shared_task
def send_questionnaires() -> int:
    """Schedule pathway questionnaires and satisfaction surveys; send the due ones; expire."""
    from .services import questionnaires

    return questionnaires.run_questionnaires()


@shared_task
def flag_overdue_tasks() -> int:
    """Notify the assignee (once) of each task that passed its due time."""
    from .services import tasks

    return tasks.flag_overdue_tasks()


@shared_task
def evaluate_rules() -> int:
    """Run the active decision-support rules over the patients with recent data."""
    from .services.support import engine

    return engine.evaluate_all()
