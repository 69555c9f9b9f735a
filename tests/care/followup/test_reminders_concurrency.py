"""Two workers running the reminder job at the same moment against the real database: every
dose is planned once and reminded once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from apps.accounts.models import User
from apps.care.models import DoseReminder
from apps.care.services.reminders import plan_doses, send_due_reminders
from apps.notifications.models import Notification
from apps.records.models import MedicationRequest

from .conftest import at


def in_two_threads(work: Callable[[], Any]) -> list[Any]:
    """Run `work` in two threads started together; their results (or exceptions)."""
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = work()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.mark.django_db(transaction=True)
def test_two_workers_plan_and_send_each_dose_once(
    prescribe: Callable[..., MedicationRequest], patient: User, settings: Any
) -> None:
    # given: several lines, four doses a day each, two days ahead.
    settings.CARE_DOSE_HORIZON_HOURS = 48
    for _ in range(3):
        prescribe(at(2026, 3, 20, 5), frequency=4, duration_days=10)

    # when: both plan at once
    planned = in_two_threads(lambda: plan_doses(at(2026, 3, 21, 5)))

    # then: no error, no duplicate, and together they created every row once
    assert all(isinstance(n, int) for n in planned), planned
    rows = DoseReminder.objects.count()
    assert rows == 3 * 4 * 2
    assert sum(planned) == rows
    assert DoseReminder.objects.values("line", "scheduled_for").distinct().count() == rows

    # when: both send everything due in the second day's answer window (12 h)
    sent = in_two_threads(lambda: send_due_reminders(at(2026, 3, 22, 21, 30)))

    # then: each due dose went out exactly once
    assert all(isinstance(n, int) for n in sent), sent
    due = DoseReminder.objects.filter(
        send_at__lte=at(2026, 3, 22, 21, 30), send_at__gt=at(2026, 3, 22, 9, 30)
    )
    assert due.count() == 3 * 3  # the 12:00, 18:00 and 22:00 doses of three lines
    assert sum(sent) == due.count() == due.filter(status="sent").count()
    # one notification per send time (the three lines' doses are grouped)
    times = due.values("send_at").distinct().count()
    assert Notification.objects.filter(user=patient, kind="care.reminder").count() == times
