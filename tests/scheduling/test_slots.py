"""Free slots from weekly rules, exceptions and bookings, across daylight-saving changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from apps.scheduling.models import AvailabilityException, AvailabilityRule, Schedule
from apps.scheduling.services.slots import compute_slots, free_slots, wall_clock

from .conftest import ZURICH, local, next_weekday


def rule(
    weekday: int, starts: int, ends: int, mode: str = "video", **extra: Any
) -> AvailabilityRule:
    return AvailabilityRule(
        schedule_id=1,
        weekday=weekday,
        starts=dt.time(starts),
        ends=dt.time(ends),
        mode=mode,
        valid_from=extra.pop("valid_from", dt.date(2020, 1, 1)),
        **extra,
    )


def starts(slots: list[Any]) -> list[str]:
    return [s.starts_at.astimezone(ZURICH).strftime("%a %H:%M") for s in slots]


def test_a_morning_rule_gives_slots_of_the_type_length() -> None:
    monday = local(2026, 11, 30, 0)

    slots = compute_slots(
        [rule(0, 8, 10)], [], 30, "video", monday, monday + dt.timedelta(days=1), clinician_id=7
    )

    assert starts(slots) == ["Mon 08:00", "Mon 08:30", "Mon 09:00", "Mon 09:30"]
    assert slots[0].starts_at == dt.datetime(2026, 11, 30, 7, 0, tzinfo=dt.UTC)  # UTC+1 in winter


def test_busy_time_and_the_wrong_mode_are_left_out() -> None:
    monday = local(2026, 11, 30, 0)
    busy = [(local(2026, 11, 30, 8, 30), local(2026, 11, 30, 9, 15))]

    slots = compute_slots(
        [rule(0, 8, 10), rule(0, 10, 11, "in_person", location_id=3)],
        busy,
        30,
        "video",
        monday,
        monday + dt.timedelta(days=1),
        clinician_id=7,
    )

    assert starts(slots) == ["Mon 08:00", "Mon 09:30"]


def test_validity_period_and_weekday() -> None:
    week = local(2026, 11, 30, 0)
    rules = [rule(0, 8, 9, valid_from=dt.date(2026, 12, 7)), rule(1, 8, 9)]

    slots = compute_slots(
        rules, [], 60, "video", week, week + dt.timedelta(days=14), clinician_id=7
    )

    assert [s.starts_at.astimezone(ZURICH).date().isoformat() for s in slots] == [
        "2026-12-01",
        "2026-12-07",
        "2026-12-08",
    ]


def test_the_same_wall_clock_time_on_both_sides_of_the_spring_change() -> None:
    # Sunday 29 March 2026, 02:00 → 03:00 in Europe/Zurich. Rules on Saturday and Monday.
    start = local(2026, 3, 28, 0)

    slots = compute_slots(
        [rule(5, 9, 10), rule(0, 9, 10)],
        [],
        60,
        "video",
        start,
        start + dt.timedelta(days=3),
        clinician_id=7,
    )

    assert [s.starts_at for s in slots] == [
        dt.datetime(2026, 3, 28, 8, 0, tzinfo=dt.UTC),  # 09:00 CET = UTC+1
        dt.datetime(2026, 3, 30, 7, 0, tzinfo=dt.UTC),  # 09:00 CEST = UTC+2
    ]


def test_a_night_rule_skips_the_hour_that_does_not_exist_in_march() -> None:
    sunday = local(2026, 3, 29, 0)

    slots = compute_slots(
        [rule(6, 1, 4)], [], 60, "video", sunday, sunday + dt.timedelta(days=1), clinician_id=7
    )

    # 01:00 CET exists, 02:00 does not, 03:00 CEST exists: two slots of a real hour each.
    assert starts(slots) == ["Sun 01:00", "Sun 03:00"]
    assert all(s.ends_at - s.starts_at == dt.timedelta(hours=1) for s in slots)


def test_the_repeated_hour_of_october_is_offered_once() -> None:
    # Sunday 25 October 2026, 03:00 CEST → 02:00 CET.
    sunday = local(2026, 10, 25, 0)

    slots = compute_slots(
        [rule(6, 1, 4)], [], 60, "video", sunday, sunday + dt.timedelta(days=1), clinician_id=7
    )

    assert starts(slots) == ["Sun 01:00", "Sun 02:00", "Sun 03:00"]
    instants = [s.starts_at for s in slots]
    assert instants[1] - instants[0] == dt.timedelta(hours=1)
    assert instants[2] - instants[1] == dt.timedelta(hours=2)  # 02:00 CEST, then 03:00 CET
    assert wall_clock(dt.date(2026, 3, 29), dt.time(2, 30), ZURICH) is None


@pytest.mark.django_db
def test_free_slot_search_subtracts_absences_in_four_queries(
    schedule: Schedule, consultation: Any, django_assert_num_queries: Any
) -> None:
    monday = next_weekday(0)
    day = dt.datetime.combine(monday, dt.time(0), tzinfo=ZURICH)
    AvailabilityException.objects.create(
        schedule=schedule,
        starts_at=day + dt.timedelta(hours=9),
        ends_at=day + dt.timedelta(hours=11),
    )

    with django_assert_num_queries(4):
        slots = free_slots(consultation, day, day + dt.timedelta(days=1))

    assert starts(slots) == ["Mon 08:00", "Mon 08:30", "Mon 11:00", "Mon 11:30"]
    assert {s.location_id for s in slots} == {
        schedule.rules.filter(mode="in_person").first().location_id
    }


@pytest.mark.django_db
def test_a_first_page_search_reads_only_the_days_it_needs_and_loses_no_slot(
    schedule: Schedule, consultation: Any, django_assert_max_num_queries: Any
) -> None:
    monday = next_weekday(0)
    start = dt.datetime.combine(monday, dt.time(9, 10), tzinfo=ZURICH)  # mid-morning start
    end = start + dt.timedelta(days=14)

    everything = free_slots(consultation, start, end)
    with django_assert_max_num_queries(4):  # the first day holds five slots
        first = free_slots(consultation, start, end, limit=5)
    with django_assert_max_num_queries(4 + 2 * 4):  # 1, 2, 4, 8 days: four pieces
        many = free_slots(consultation, start, end, limit=len(everything))

    assert first == everything[:5]
    assert many == everything
    assert starts(first)[0] == "Mon 09:30"
