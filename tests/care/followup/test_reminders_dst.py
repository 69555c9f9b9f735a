"""The issue's test: medication reminders at the right local times across a daylight-saving
change — both changes in Europe/Zurich and a patient in another zone — never duplicated."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from apps.care.models import CarePreferences, DoseReminder
from apps.care.services.reminders import plan_doses, run_reminders
from apps.records.models import MedicationRequest

from .conftest import ZURICH, at

NEW_YORK = ZoneInfo("America/New_York")


def planned(line: MedicationRequest) -> list[dt.datetime]:
    return list(
        DoseReminder.objects.filter(line=line)
        .order_by("scheduled_for")
        .values_list("scheduled_for", flat=True)
    )


def walls(moments: list[dt.datetime], zone: ZoneInfo) -> list[str]:
    return [m.astimezone(zone).strftime("%d %H:%M") for m in moments]


def test_march_change_in_zurich_keeps_local_times(
    prescribe: Callable[..., MedicationRequest], settings: Any
) -> None:
    # given: twice a day (08:00, 18:00) from Friday 27 March 2026; clocks go forward on Sunday 29.
    settings.CARE_DOSE_HORIZON_HOURS = 96
    line = prescribe(at(2026, 3, 27, 9, 0), frequency=2)

    # when
    plan_doses(at(2026, 3, 27, 23, 0))

    # then: the same wall times; in UTC one hour earlier from the 29th.
    doses = planned(line)
    assert walls(doses, ZURICH) == [
        "28 08:00",
        "28 18:00",
        "29 08:00",
        "29 18:00",
        "30 08:00",
        "30 18:00",
        "31 08:00",
        "31 18:00",
    ]
    assert doses[:4] == [
        at(2026, 3, 28, 7),
        at(2026, 3, 28, 17),
        at(2026, 3, 29, 6),
        at(2026, 3, 29, 16),
    ]
    assert set(DoseReminder.objects.filter(line=line).values_list("local_time", flat=True)) == {
        "08:00",
        "18:00",
    }


def test_october_change_in_zurich_keeps_local_times(
    prescribe: Callable[..., MedicationRequest], settings: Any
) -> None:
    # given: three times a day; clocks go back on Sunday 25 October 2026.
    settings.CARE_DOSE_HORIZON_HOURS = 72
    line = prescribe(at(2026, 10, 23, 6, 0), frequency=3)

    plan_doses(at(2026, 10, 23, 22, 0))

    doses = planned(line)
    assert walls(doses, ZURICH) == [
        "24 08:00",
        "24 12:00",
        "24 18:00",
        "25 08:00",
        "25 12:00",
        "25 18:00",
        "26 08:00",
        "26 12:00",
        "26 18:00",
    ]
    assert doses[2] == at(2026, 10, 24, 16)  # summer time, UTC+2
    assert doses[3] == at(2026, 10, 25, 7)  # winter time, UTC+1


def test_a_patient_in_new_york_follows_new_yorks_changes_not_zurichs(
    prescribe: Callable[..., MedicationRequest],
    preferences: Callable[..., CarePreferences],
    settings: Any,
) -> None:
    # given: New York moves its clocks on 8 March 2026, three weeks before Zurich.
    settings.CARE_DOSE_HORIZON_HOURS = 72
    preferences(time_zone="America/New_York", quiet_start=None, quiet_end=None)
    line = prescribe(at(2026, 3, 6, 12, 0), frequency=1, duration_days=30)

    plan_doses(at(2026, 3, 6, 14, 0))

    doses = planned(line)
    assert walls(doses, NEW_YORK) == ["07 08:00", "08 08:00", "09 08:00"]
    assert doses == [at(2026, 3, 7, 13), at(2026, 3, 8, 12), at(2026, 3, 9, 12)]

    # and on Zurich's change weekend nothing moves for them.
    plan_doses(at(2026, 3, 28, 0, 0))
    later = [d for d in planned(line) if d >= at(2026, 3, 28)]
    assert later[:3] == [at(2026, 3, 28, 12), at(2026, 3, 29, 12), at(2026, 3, 30, 12)]


def test_a_dose_time_in_the_skipped_hour_is_planned_once_after_the_gap(
    prescribe: Callable[..., MedicationRequest],
    preferences: Callable[..., CarePreferences],
    settings: Any,
) -> None:
    # given: a night dose at 02:30, which does not exist on 29 March in Zurich.
    preferences(
        dose_times=["02:30", "12:00", "18:00", "22:00"],
        quiet_start=dt.time(23),
        quiet_end=dt.time(1),
    )
    line = prescribe(at(2026, 3, 27, 12, 0), frequency=1)

    plan_doses(at(2026, 3, 28, 12, 0))
    plan_doses(at(2026, 3, 28, 20, 0))

    that_night = [d for d in planned(line) if at(2026, 3, 28, 22) <= d <= at(2026, 3, 29, 3)]
    assert that_night == [at(2026, 3, 29, 1, 0)]  # 03:00 summer time: the first minute after
    assert set(DoseReminder.objects.filter(line=line).values_list("local_time", flat=True)) == {
        "02:30"
    }


def test_a_dose_time_in_the_repeated_hour_is_planned_once(
    prescribe: Callable[..., MedicationRequest], preferences: Callable[..., CarePreferences]
) -> None:
    # given: 02:30 happens twice on 25 October in Zurich.
    preferences(
        dose_times=["02:30", "12:00", "18:00", "22:00"],
        quiet_start=dt.time(23),
        quiet_end=dt.time(1),
    )
    line = prescribe(at(2026, 10, 23, 12, 0), frequency=1)

    # when: the job runs before, between and after the two occurrences.
    for moment in (at(2026, 10, 24, 12), at(2026, 10, 25, 0, 45), at(2026, 10, 25, 1, 45)):
        run_reminders(moment)

    # then: one dose that night, at the first occurrence.
    night = [d for d in planned(line) if at(2026, 10, 24, 22) <= d <= at(2026, 10, 25, 3)]
    assert night == [at(2026, 10, 25, 0, 30)]


def test_running_the_job_twice_plans_nothing_more(
    prescribe: Callable[..., MedicationRequest],
) -> None:
    line = prescribe(at(2026, 3, 27, 9, 0), frequency=4)

    first = plan_doses(at(2026, 3, 28, 6, 0))
    again = plan_doses(at(2026, 3, 28, 6, 0))
    later = plan_doses(at(2026, 3, 28, 6, 1))

    assert first == len(planned(line)) > 0
    assert again == 0
    assert later == 0
    assert len(planned(line)) == len(set(planned(line)))
