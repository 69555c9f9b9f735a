"""Dose wall times from the patient's four slots, and local time across the clock changes."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from apps.care.services.followup_time import (
    LocalRules,
    dose_times,
    in_quiet_hours,
    local_moment,
    out_of_quiet_hours,
)

ZURICH = ZoneInfo("Europe/Zurich")
SLOTS = (dt.time(8), dt.time(12), dt.time(18), dt.time(22))


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, ["08:00"]),
        (2, ["08:00", "18:00"]),
        (3, ["08:00", "12:00", "18:00"]),
        (4, ["08:00", "12:00", "18:00", "22:00"]),
        (6, ["08:00", "10:48", "13:36", "16:24", "19:12", "22:00"]),
    ],
)
def test_dose_times_by_frequency(n: int, expected: list[str]) -> None:
    assert [t.strftime("%H:%M") for t in dose_times(SLOTS, n)] == expected


def test_a_skipped_wall_time_moves_to_the_end_of_the_gap() -> None:
    # 29 March 2026, Zurich: 02:00 jumps to 03:00; 02:30 does not exist.
    moment = local_moment(dt.date(2026, 3, 29), dt.time(2, 30), ZURICH)
    assert moment == dt.datetime(2026, 3, 29, 1, 0, tzinfo=dt.UTC)
    assert moment.astimezone(ZURICH).strftime("%H:%M") == "03:00"


def test_a_repeated_wall_time_is_its_first_occurrence() -> None:
    # 25 October 2026, Zurich: 02:30 happens at 00:30 UTC (summer time) and 01:30 UTC.
    moment = local_moment(dt.date(2026, 10, 25), dt.time(2, 30), ZURICH)
    assert moment == dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)


def test_quiet_hours_span_midnight_or_not() -> None:
    night = (dt.time(22, 30), dt.time(7, 0))
    assert in_quiet_hours(dt.time(23, 0), night)
    assert in_quiet_hours(dt.time(6, 59), night)
    assert not in_quiet_hours(dt.time(7, 0), night)
    assert not in_quiet_hours(dt.time(22, 29), night)
    lunch = (dt.time(12, 0), dt.time(14, 0))
    assert in_quiet_hours(dt.time(12, 0), lunch)
    assert not in_quiet_hours(dt.time(14, 0), lunch)
    assert not in_quiet_hours(dt.time(23, 0), lunch)


def test_out_of_quiet_hours_waits_for_the_morning_across_the_spring_change() -> None:
    rules = LocalRules(zone=ZURICH, dose_times=SLOTS, quiet=(dt.time(22, 30), dt.time(7, 0)))
    evening = local_moment(dt.date(2026, 3, 28), dt.time(23, 0), ZURICH)
    # 07:00 on the 29th is already summer time (UTC+2).
    assert out_of_quiet_hours(evening, rules) == dt.datetime(2026, 3, 29, 5, 0, tzinfo=dt.UTC)
    morning = local_moment(dt.date(2026, 3, 29), dt.time(8, 0), ZURICH)
    assert out_of_quiet_hours(morning, rules) == morning
