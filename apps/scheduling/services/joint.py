"""Common free time of several clinicians, for joint appointments booked by the clinic.

Each clinician's free time is their availability windows of the type's mode minus their
appointments and exceptions; the times offered are the starts, on a grid of `step` minutes,
where the whole appointment fits inside the free time of every clinician.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils import timezone

from ..models import AppointmentType, AvailabilityRule, Schedule
from .slots import Interval, busy_intervals, offering, windows_of

STEP_MINUTES = 15


@dataclass(frozen=True, order=True)
class JointSlot:
    starts_at: dt.datetime  # aware, UTC
    ends_at: dt.datetime


def merge(intervals: Sequence[Interval]) -> list[Interval]:
    """Sorted, non-overlapping union of the intervals."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract(free: Sequence[Interval], busy: Sequence[Interval]) -> list[Interval]:
    """The parts of the (merged) `free` intervals that no `busy` interval touches."""
    result: list[Interval] = []
    busy = merge(busy)
    for start, end in free:
        cursor = start
        for b_start, b_end in busy:
            if b_end <= cursor or b_start >= end:
                continue
            if b_start > cursor:
                result.append((cursor, b_start))
            cursor = max(cursor, b_end)
            if cursor >= end:
                break
        if cursor < end:
            result.append((cursor, end))
    return result


def intersect(first: Sequence[Interval], second: Sequence[Interval]) -> list[Interval]:
    """Intersection of two sorted, non-overlapping interval lists."""
    result: list[Interval] = []
    i = j = 0
    while i < len(first) and j < len(second):
        start = max(first[i][0], second[j][0])
        end = min(first[i][1], second[j][1])
        if start < end:
            result.append((start, end))
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return result


def _ceil(instant: dt.datetime, step: int) -> dt.datetime:
    """Round up to a multiple of `step` minutes (the clinic's offsets are whole hours)."""
    seconds = step * 60
    epoch = instant.timestamp()
    rounded = -(-int(epoch) // seconds) * seconds
    return dt.datetime.fromtimestamp(rounded, tz=dt.UTC)


def joint_free_slots(
    appointment_type: AppointmentType,
    clinician_ids: Sequence[int],
    start: dt.datetime,
    end: dt.datetime,
    *,
    step: int = STEP_MINUTES,
    limit: int | None = None,
) -> list[JointSlot]:
    """Starts in [start, end) where every clinician offers the type and is free throughout.

    Clinicians who do not offer the type (or whose profession may not deliver it) have no free
    time. Four queries whatever the number of clinicians.
    """
    clinician_ids = list(dict.fromkeys(clinician_ids))
    start = max(start, timezone.now())
    if not clinician_ids or end <= start:
        return []
    schedules = dict(
        Schedule.objects.filter(offering(appointment_type), clinician_id__in=clinician_ids)
        .distinct()
        .values_list("clinician_id", "pk")
    )
    if len(schedules) < len(clinician_ids):
        return []
    rules: dict[int, list[AvailabilityRule]] = defaultdict(list)
    for rule in AvailabilityRule.objects.filter(schedule_id__in=list(schedules.values())):
        rules[rule.schedule_id].append(rule)
    busy = busy_intervals(clinician_ids, start, end)
    common: list[Interval] | None = None
    for clinician_id in clinician_ids:
        windows = [
            (max(opens, start), min(closes, end))
            for opens, closes, _rule in windows_of(
                rules.get(schedules[clinician_id], []), appointment_type.mode, start, end
            )
            if opens < end and closes > start
        ]
        free = subtract(merge(windows), busy.get(clinician_id, []))
        common = free if common is None else intersect(common, free)
        if not common:
            return []
    length = dt.timedelta(minutes=appointment_type.minutes)
    found: list[JointSlot] = []
    for free_start, free_end in common or []:
        cursor = _ceil(free_start, step)
        while cursor + length <= free_end:
            found.append(JointSlot(cursor, cursor + length))
            if limit is not None and len(found) >= limit:
                return found
            cursor += dt.timedelta(minutes=step)
    return found
