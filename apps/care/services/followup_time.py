"""Local time for what the platform sends patients: their time zone, their dose times and
their quiet hours, with the daylight-saving changes handled once, here.

A wall time that does not exist (the spring-forward hour) becomes the first minute after the
gap; a wall time that happens twice (the autumn hour) is its first occurrence (fold=0).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings

from ..models import CarePreferences

TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DOSE_SLOTS = 4


def parse_time(value: str) -> dt.time | None:
    """ "HH:MM" (24 h) as a time, or None when it is not one."""
    match = TIME_RE.match(value.strip()) if isinstance(value, str) else None
    return dt.time(int(match.group(1)), int(match.group(2))) if match else None


def zone_or_none(name: str) -> ZoneInfo | None:
    if not isinstance(name, str) or not name or name not in valid_zone_names():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


_ZONES: frozenset[str] | None = None


def valid_zone_names() -> frozenset[str]:
    """The IANA zones this system knows (computed once: reading them walks the tz database)."""
    global _ZONES  # noqa: PLW0603 - a process-wide cache of an immutable system list
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def check_dose_times(values: list[str]) -> list[str]:
    """Four "HH:MM" times in increasing order, or ValueError saying what is wrong."""
    if not isinstance(values, list) or len(values) != DOSE_SLOTS:
        raise ValueError("Give four dose times.")
    times = [parse_time(v) for v in values]
    if any(t is None for t in times):
        raise ValueError("Dose times are written HH:MM, e.g. 08:00.")
    if any(a >= b for a, b in zip(times, times[1:], strict=False)):  # type: ignore[operator]
        raise ValueError("Dose times must follow each other through the day.")
    return [t.strftime("%H:%M") for t in times]  # type: ignore[union-attr]


@dataclass(frozen=True)
class LocalRules:
    """The patient's time zone, dose wall times and quiet hours (None: no quiet hours)."""

    zone: ZoneInfo
    dose_times: tuple[dt.time, ...]
    quiet: tuple[dt.time, dt.time] | None
    reminders_on: bool = True


def default_rules() -> LocalRules:
    return rules_for(None)


def rules_for(prefs: CarePreferences | None) -> LocalRules:
    """The rules from the patient's preferences, each missing or invalid part from settings."""
    zone = zone_or_none(prefs.time_zone) if prefs is not None else None
    zone = zone or ZoneInfo(settings.TIME_ZONE)
    times: list[str] | None = None
    if prefs is not None and prefs.dose_times:
        try:
            times = check_dose_times(list(prefs.dose_times))
        except ValueError:
            times = None
    if times is None:
        times = check_dose_times(list(settings.CARE_DOSE_TIMES))
    quiet: tuple[dt.time, dt.time] | None
    if prefs is not None and prefs.quiet_start is not None and prefs.quiet_end is not None:
        quiet = (prefs.quiet_start, prefs.quiet_end)
    else:
        start, end = (parse_time(v) for v in settings.CARE_QUIET_HOURS[:2])
        quiet = (start, end) if start is not None and end is not None else None
    if quiet is not None and quiet[0] == quiet[1]:
        quiet = None
    return LocalRules(
        zone=zone,
        dose_times=tuple(parse_time(t) for t in times),  # type: ignore[misc]
        quiet=quiet,
        reminders_on=prefs.medication_reminders if prefs is not None else True,
    )


def dose_times(times: list[dt.time] | tuple[dt.time, ...], n: int) -> list[dt.time]:
    """The wall times of `n` doses a day from the four slots t0…t3.

    1 → [t0]; 2 → [t0, t2]; 3 → [t0, t1, t2]; 4 → all four. More than four a day: `n` times
    spread evenly from t0 to t3 (rounded to the minute), so none falls in the night.
    """
    if n <= 0:
        return []
    if n == 1:
        return [times[0]]
    if n == 2:
        return [times[0], times[2]]
    if n == 3:
        return [times[0], times[1], times[2]]
    if n == 4:
        return list(times[:4])
    first = times[0].hour * 60 + times[0].minute
    last = times[3].hour * 60 + times[3].minute
    step = (last - first) / (n - 1)
    minutes = sorted({round(first + i * step) for i in range(n)})
    return [dt.time(m // 60, m % 60) for m in minutes]


def _exists(naive: dt.datetime, zone: ZoneInfo) -> bool:
    aware = naive.replace(tzinfo=zone, fold=0)
    back = aware.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
    return back == naive


def local_moment(day: dt.date, wall: dt.time, zone: ZoneInfo) -> dt.datetime:
    """The instant (UTC) of `wall` on `day` in `zone`: skipped times move to the first minute
    after the gap, repeated times are their first occurrence."""
    naive = dt.datetime.combine(day, wall)
    step = 0
    # Gaps are at most a few hours (historic changes); stop after a day whatever happens.
    while not _exists(naive, zone) and step < 24 * 60:
        naive += dt.timedelta(minutes=1)
        step += 1
    return naive.replace(tzinfo=zone, fold=0).astimezone(dt.UTC)


def in_quiet_hours(wall: dt.time, quiet: tuple[dt.time, dt.time] | None) -> bool:
    """Whether a local wall time falls in [start, end), the span crossing midnight or not."""
    if quiet is None:
        return False
    start, end = quiet
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def out_of_quiet_hours(moment: dt.datetime, rules: LocalRules) -> dt.datetime:
    """`moment`, or the end of the quiet hours it falls in (UTC)."""
    local = moment.astimezone(rules.zone)
    wall = local.time().replace(second=0, microsecond=0)
    if rules.quiet is None or not in_quiet_hours(wall, rules.quiet):
        return moment
    end = rules.quiet[1]
    day = local.date() if wall < end else local.date() + dt.timedelta(days=1)
    return local_moment(day, end, rules.zone)


def local_day_bounds(day: dt.date, zone: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """The first instant of `day` and of the next day in `zone` (UTC)."""
    return (
        local_moment(day, dt.time(0, 0), zone),
        local_moment(day + dt.timedelta(days=1), dt.time(0, 0), zone),
    )
