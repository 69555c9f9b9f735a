"""The care team's opening hours for messages, and when an answer is due.

`MESSAGING_OPENING_HOURS` gives the weekdays and the daily hours in the local time zone;
`MESSAGING_RESPONSE_HOURS` how many of those opening hours the team has to answer. Public
holidays are not known here: an answer due on a holiday is shown as due that day.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

# A week is always enough to find the next opening (at least one day is open).
_MAX_DAYS = 8


def _hours() -> tuple[frozenset[int], dt.time, dt.time]:
    days, opens, closes = settings.MESSAGING_OPENING_HOURS
    return days, opens, closes


def _local(at: dt.datetime) -> dt.datetime:
    return timezone.localtime(at)


def _at(day: dt.date, time: dt.time) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, time))


def is_open(at: dt.datetime) -> bool:
    """Whether the team reads messages at this moment."""
    days, opens, closes = _hours()
    local = _local(at)
    return local.isoweekday() in days and opens <= local.time() < closes


def next_opening(at: dt.datetime) -> dt.datetime:
    """`at` itself when open, else the next moment the team opens."""
    if is_open(at):
        return at
    days, opens, _closes = _hours()
    local = _local(at)
    for offset in range(_MAX_DAYS):
        day = local.date() + dt.timedelta(days=offset)
        start = _at(day, opens)
        if day.isoweekday() in days and start > local:
            return start
    raise AssertionError("no opening day in the configured hours")  # pragma: no cover


def response_due(at: dt.datetime, hours: int | None = None) -> dt.datetime:
    """When an answer to a message sent at `at` is due: that many opening hours later."""
    remaining = dt.timedelta(hours=hours or settings.MESSAGING_RESPONSE_HOURS)
    days, _opens, closes = _hours()
    moment = next_opening(at)
    while True:
        local = _local(moment)
        closing = _at(local.date(), closes)
        if moment + remaining <= closing:
            return moment + remaining
        remaining -= closing - moment
        moment = next_opening(closing)
