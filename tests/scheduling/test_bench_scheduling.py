"""`manage.py bench_scheduling`: it measures slot search and the agenda, and cleans up."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from apps.accounts.models import Organization, User
from apps.records.models import Patient
from apps.scheduling.models import Appointment, AppointmentType, Participant, Schedule


def _run(*args: str) -> dict[str, Any]:
    stdout, stderr = StringIO(), StringIO()
    call_command(
        "bench_scheduling",
        "--practitioners=6",
        "--weeks=3",
        "--patients=40",
        "--runs=3",
        "--agenda-runs=2",
        "--team-size=4",
        *args,
        stdout=stdout,
        stderr=stderr,
    )
    assert "bench_scheduling:" in stderr.getvalue()  # progress on stderr, not in the JSON
    result: dict[str, Any] = json.loads(stdout.getvalue())
    return result


@pytest.mark.django_db
def test_bench_prints_figures_and_removes_its_data() -> None:
    # when
    result = _run()

    # then
    seeded = result["seeded"]
    assert seeded["practitioners"] == 6 and seeded["appointments"] > 0
    assert 0.25 < seeded["booked_share"] < 0.5
    slots = result["free_slots"]
    searches = (
        "first_page_all_schedules",
        "first_page_by_specialty",
        "all_schedules",
        "by_specialty",
        "one_practitioner",
    )
    for search in searches:
        figures = slots[search]
        assert figures["runs"] == 3 and figures["p95_ms"] >= figures["p50_ms"] > 0
        assert figures["queries"] <= 4 + 2 * 4  # a first page may widen its window 4 times
    assert slots["all_schedules"]["slots"] > slots["one_practitioner"]["slots"] > 0
    agenda = result["team_agenda"]
    assert agenda is not None and agenda["clinicians"] == 4 and agenda["queries"] > 0
    assert set(result["target"]["met"]) == set(searches)
    assert not Organization.objects.filter(name="Bench scheduling").exists()
    assert not User.objects.filter(email__startswith="bench-sched-").exists()
    assert not AppointmentType.objects.filter(code__startswith="bench-").exists()
    assert not Appointment.objects.exists() and not Participant.objects.exists()
    assert not Schedule.objects.exists() and not Patient.objects.exists()


@pytest.mark.django_db
def test_keep_leaves_the_agendas_in_place() -> None:
    result = _run("--keep", "--practitioners=3")

    assert result["kept"] is True
    assert Schedule.objects.count() == 3
    booked = Appointment.objects.count()
    assert booked == result["seeded"]["appointments"]
    assert Participant.objects.filter(active=True).count() == booked
