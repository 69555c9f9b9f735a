"""Free slots, computed from the weekly rules minus exceptions and appointments.

Rules are in the clinic's wall-clock time (`settings.TIME_ZONE`, Europe/Zurich): a 08:00–12:00
rule means 08:00 local on summer and winter days alike. On the day clocks go forward, a slot
whose wall-clock start does not exist is skipped; on the day they go back, an ambiguous start is
taken at its first occurrence. Slots are stored nowhere: a search reads the rules, exceptions
and appointments of the schedules concerned in a fixed number of queries and computes.
"""

from __future__ import annotations

import bisect
import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ..models import (
    AppointmentType,
    AvailabilityException,
    AvailabilityRule,
    Participant,
    Schedule,
)


@dataclass(frozen=True, order=True)
class Slot:
    starts_at: dt.datetime  # aware, UTC
    ends_at: dt.datetime
    schedule_id: int
    clinician_id: int
    mode: str
    location_id: int | None


Interval = tuple[dt.datetime, dt.datetime]


def clinic_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def wall_clock(day: dt.date, at: dt.time, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """The instant of `day` `at` in `zone`, or None when that wall-clock time does not exist."""
    local = dt.datetime.combine(day, at, tzinfo=zone)  # fold=0: first of two ambiguous times
    instant = local.astimezone(dt.UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return None  # skipped by the spring-forward gap
    return instant


@lru_cache(maxsize=8192)
def _wall_clock_cached(day: dt.date, at: dt.time, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """`wall_clock`, memoised: every clinician's grid has the same few wall-clock times."""
    return wall_clock(day, at, zone)


def _merged(busy: Sequence[Interval]) -> tuple[list[dt.datetime], list[dt.datetime]]:
    """Busy intervals merged into disjoint ones: sorted starts and their ends (bisectable)."""
    starts: list[dt.datetime] = []
    ends: list[dt.datetime] = []
    for b_start, b_end in sorted(busy):
        if ends and b_start <= ends[-1]:
            ends[-1] = max(ends[-1], b_end)
        else:
            starts.append(b_start)
            ends.append(b_end)
    return starts, ends


def _midnight_after(instant: dt.datetime, days: int, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The clinic's midnight `days` days after the day of `instant`."""
    day = instant.astimezone(zone).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(dt.UTC)


def rule_windows(
    rules: Iterable[AvailabilityRule], start: dt.date, end: dt.date, zone: zoneinfo.ZoneInfo
) -> list[tuple[AvailabilityRule, dt.date]]:
    """(rule, day) for every day in [start, end] the rule applies to."""
    found = []
    day = start
    by_weekday: dict[int, list[AvailabilityRule]] = defaultdict(list)
    for rule in rules:
        by_weekday[rule.weekday].append(rule)
    while day <= end:
        for rule in by_weekday.get(day.weekday(), []):
            if rule.valid_from <= day and (rule.valid_until is None or day <= rule.valid_until):
                found.append((rule, day))
        day += dt.timedelta(days=1)
    return found


def _overlaps(start: dt.datetime, end: dt.datetime, busy: Sequence[Interval]) -> bool:
    return any(b_start < end and start < b_end for b_start, b_end in busy)


def compute_slots(
    rules: Iterable[AvailabilityRule],
    busy: Sequence[Interval],
    minutes: int,
    mode: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    clinician_id: int,
    zone: zoneinfo.ZoneInfo | None = None,
) -> list[Slot]:
    """Slots of `minutes` in the rules' windows of `mode`, within [start, end), not busy."""
    zone = zone or clinic_zone()
    length = dt.timedelta(minutes=minutes)
    busy_starts, busy_ends = _merged(busy)
    slots = []
    first_day = start.astimezone(zone).date()
    last_day = end.astimezone(zone).date()
    for rule, day in rule_windows(rules, first_day, last_day, zone):
        if rule.mode != mode:
            continue
        window_end = _wall_clock_cached(day, rule.ends, zone)
        cursor = dt.datetime.combine(day, rule.starts)
        last = dt.datetime.combine(day, rule.ends)
        while cursor + length <= last:
            begins = _wall_clock_cached(day, cursor.time(), zone)
            cursor += length
            if begins is None:
                continue
            finishes = begins + length
            if window_end is not None and finishes > window_end:
                continue
            if begins < start or finishes > end:
                continue
            # The last busy interval starting before `begins`, and the next one.
            i = bisect.bisect_right(busy_starts, begins) - 1
            if (i >= 0 and busy_ends[i] > begins) or (
                i + 1 < len(busy_starts) and busy_starts[i + 1] < finishes
            ):
                continue
            slots.append(
                Slot(begins, finishes, rule.schedule_id, clinician_id, rule.mode, rule.location_id)
            )
    return sorted(slots)


RULE_FIELDS = (
    "schedule_id",
    "weekday",
    "starts",
    "ends",
    "mode",
    "location_id",
    "valid_from",
    "valid_until",
)


def rule_rows(schedule_ids: Iterable[int]) -> Any:
    """The rules of the schedules as light named tuples with the rule's attributes.

    A search over two hundred agendas reads two thousand rules: model instances would cost a
    third of the search (and feed the garbage collector).
    """
    return AvailabilityRule.objects.filter(schedule_id__in=list(schedule_ids)).values_list(
        *RULE_FIELDS, named=True
    )


def earliest_bookable(now: dt.datetime | None = None) -> dt.datetime:
    """Online booking closes `SCHEDULING_MIN_NOTICE_MINUTES` before a slot."""
    now = now or timezone.now()
    return now + dt.timedelta(minutes=settings.SCHEDULING_MIN_NOTICE_MINUTES)


def busy_intervals(
    user_ids: Iterable[int], start: dt.datetime, end: dt.datetime
) -> dict[int, list[Interval]]:
    """Per clinician: active appointments and agenda exceptions overlapping [start, end)."""
    user_ids = list(user_ids)
    busy: dict[int, list[Interval]] = defaultdict(list)
    for user_id, b_start, b_end in Participant.objects.filter(
        user_id__in=user_ids, active=True, starts_at__lt=end, ends_at__gt=start
    ).values_list("user_id", "starts_at", "ends_at"):
        busy[user_id].append((b_start, b_end))
    for user_id, b_start, b_end in AvailabilityException.objects.filter(
        schedule__clinician_id__in=user_ids, starts_at__lt=end, ends_at__gt=start
    ).values_list("schedule__clinician_id", "starts_at", "ends_at"):
        busy[user_id].append((b_start, b_end))
    return busy


def offering(appointment_type: AppointmentType) -> Q:
    """Schedules that may deliver the type: they offer it and their profession is allowed."""
    condition = Q(active=True, clinician__is_active=True, appointment_types=appointment_type)
    if appointment_type.professions:
        condition &= Q(clinician__role__in=appointment_type.professions)
    return condition


def free_slots(
    appointment_type: AppointmentType,
    start: dt.datetime,
    end: dt.datetime,
    *,
    schedules: Iterable[int] | None = None,
    specialty: str = "",
    limit: int | None = None,
) -> list[Slot]:
    """Free slots of the type in [start, end), every offering schedule or the given ones.

    Four queries whatever the number of schedules (with `limit`, two more per widening of
    the window, at most log2 of the days searched).
    """
    start = max(start, earliest_bookable())
    if end <= start:
        return []
    found = Schedule.objects.filter(offering(appointment_type))
    if schedules is not None:
        found = found.filter(pk__in=list(schedules))
    if specialty:
        found = found.filter(Q(specialty__icontains=specialty) | Q(specialty_code=specialty))
    clinician_of = dict(found.values_list("pk", "clinician_id"))
    if not clinician_of:
        return []
    rules_by_schedule: dict[int, list[AvailabilityRule]] = defaultdict(list)
    for rule in rule_rows(clinician_of):
        rules_by_schedule[rule.schedule_id].append(rule)
    zone = clinic_zone()
    # With a limit (a first page), read and compute a day, then two, four…, until enough slots:
    # the busy time of two hundred agendas over weeks is not read to show twenty slots.
    slots: list[Slot] = []
    days = 1
    chunk_start = start
    while chunk_start < end:
        chunk_end = end
        if limit is not None:  # up to a local midnight: no slot straddles two pieces
            midnight = _midnight_after(chunk_start, days, zone)
            chunk_end = min(end, midnight)
        busy = busy_intervals(clinician_of.values(), chunk_start, chunk_end)
        for schedule_id, clinician_id in clinician_of.items():
            slots += compute_slots(
                rules_by_schedule.get(schedule_id, []),
                busy.get(clinician_id, []),
                appointment_type.minutes,
                appointment_type.mode,
                chunk_start,
                chunk_end,
                clinician_id=clinician_id,
                zone=zone,
            )
        if limit is not None and len(slots) >= limit:
            break
        chunk_start, days = chunk_end, days * 2
    slots.sort()
    return slots[:limit] if limit is not None else slots


def windows_of(
    rules: Iterable[AvailabilityRule], mode: str, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, dt.datetime, AvailabilityRule]]:
    """The rules' windows of `mode` (as instants) on the days [start, end] touches."""
    zone = clinic_zone()
    windows = []
    first_day = start.astimezone(zone).date() - dt.timedelta(days=1)
    for rule, day in rule_windows(rules, first_day, end.astimezone(zone).date(), zone):
        if rule.mode != mode:
            continue
        opens, closes = wall_clock(day, rule.starts, zone), wall_clock(day, rule.ends, zone)
        if opens is not None and closes is not None:
            windows.append((opens, closes, rule))
    return windows


def available_for(
    clinician_ids: Sequence[int],
    appointment_type: AppointmentType,
    starts_at: dt.datetime,
) -> dict[int, Slot | None]:
    """For each clinician: the slot [starts_at, +duration) if it lies inside one of their
    availability windows of the type's mode and nothing else is booked then; else None.

    Staff booking and joint appointments use this: any start inside the windows, not only the
    grid offered to patients. Four queries.
    """
    ends_at = starts_at + dt.timedelta(minutes=appointment_type.minutes)
    schedules = dict(
        Schedule.objects.filter(clinician_id__in=list(clinician_ids), active=True).values_list(
            "clinician_id", "pk"
        )
    )
    rules_by_schedule: dict[int, list[AvailabilityRule]] = defaultdict(list)
    for rule in rule_rows(schedules.values()):
        rules_by_schedule[rule.schedule_id].append(rule)
    busy = busy_intervals(clinician_ids, starts_at, ends_at)
    answer: dict[int, Slot | None] = {}
    for clinician_id in clinician_ids:
        schedule_id = schedules.get(clinician_id)
        answer[clinician_id] = None
        if schedule_id is None or _overlaps(starts_at, ends_at, busy.get(clinician_id, [])):
            continue
        for opens, closes, rule in windows_of(
            rules_by_schedule.get(schedule_id, []), appointment_type.mode, starts_at, ends_at
        ):
            if opens <= starts_at and ends_at <= closes:
                answer[clinician_id] = Slot(
                    starts_at, ends_at, schedule_id, clinician_id, rule.mode, rule.location_id
                )
                break
    return answer
