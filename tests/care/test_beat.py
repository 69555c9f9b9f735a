"""The care jobs of Celery beat name real tasks, which run (eagerly here) and change nothing
when there is nothing to do."""

from __future__ import annotations

from typing import Any

import apps.care.tasks  # noqa: F401 - registers the tasks, as the worker's autodiscovery does
from virtualhospital.celery import app


def test_every_care_beat_entry_runs_and_finds_nothing_to_do(db: None, settings: Any) -> None:
    entries = {
        name: entry
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if name.startswith("care-")
    }
    assert sorted(entries) == [
        "care-decision-support",
        "care-dose-reminders",
        "care-overdue-tasks",
        "care-questionnaires",
    ]
    for entry in entries.values():
        assert app.tasks[entry["task"]].delay().get(timeout=30) == 0
