"""Opening hours of the care team's messaging: open or not, the next opening, when an answer is
due (across nights, weekends and the changes of summer time), the automatic reply outside
hours, and the `MESSAGING_OPENING_HOURS` variable."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import formats, timezone, translation

from apps.accounts.models import User
from apps.core.env import ConfigError, env_opening_hours
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Message, Thread, Topic
from apps.messaging.services import hours
from apps.messaging.services.threads import do_post_message
from tests.core.test_settings import run_manage

ZURICH = ZoneInfo("Europe/Zurich")
WEEKDAYS = (frozenset({1, 2, 3, 4, 5}), dt.time(8), dt.time(18))


@pytest.fixture(autouse=True)
def _office_hours(settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Zurich"
    settings.MESSAGING_OPENING_HOURS = WEEKDAYS
    settings.MESSAGING_RESPONSE_HOURS = 16


def zurich(day: str, time: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=ZURICH)


# 2025-03-24 is a Monday; summer time began on Sunday 2025-03-30 and ended on 2025-10-26.
MONDAY, TUESDAY, FRIDAY, SATURDAY, SUNDAY = (
    "2025-03-24",
    "2025-03-25",
    "2025-03-28",
    "2025-03-29",
    "2025-03-30",
)


# ---------------------------------------------------------------------------------------------
# is_open / next_opening


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (zurich(MONDAY, "10:00"), True),
        (zurich(MONDAY, "08:00"), True),
        (zurich(MONDAY, "07:59:59"), False),
        (zurich(MONDAY, "17:59:59"), True),
        (zurich(MONDAY, "18:00"), False),  # closed from the closing time on
        (zurich(SATURDAY, "10:00"), False),
        (zurich(SUNDAY, "10:00"), False),
        # the hours are the clinic's: 07:30 UTC is 08:30 in Zurich in winter
        (dt.datetime(2025, 3, 24, 7, 30, tzinfo=dt.UTC), True),
        (dt.datetime(2025, 3, 24, 6, 30, tzinfo=dt.UTC), False),
    ],
)
def test_is_open(at: dt.datetime, expected: bool) -> None:
    assert hours.is_open(at) is expected


@pytest.mark.parametrize(
    ("at", "opening"),
    [
        (zurich(MONDAY, "10:00"), zurich(MONDAY, "10:00")),  # open: now
        (zurich(TUESDAY, "06:00"), zurich(TUESDAY, "08:00")),  # early morning
        (zurich(TUESDAY, "20:00"), zurich("2025-03-26", "08:00")),  # evening
        (zurich(TUESDAY, "18:00"), zurich("2025-03-26", "08:00")),  # exactly at closing
        (zurich(FRIDAY, "18:00"), zurich("2025-03-31", "08:00")),  # Friday's closing: Monday
        (zurich(SATURDAY, "10:00"), zurich("2025-03-31", "08:00")),  # weekend
        (zurich("2025-03-23", "23:59"), zurich(MONDAY, "08:00")),  # Sunday night
    ],
)
def test_next_opening(at: dt.datetime, opening: dt.datetime) -> None:
    assert hours.next_opening(at) == opening


def test_next_opening_with_a_list_of_days(settings: Any) -> None:
    settings.MESSAGING_OPENING_HOURS = (frozenset({2, 4}), dt.time(9), dt.time(12))

    assert hours.next_opening(zurich(TUESDAY, "12:00")) == zurich("2025-03-27", "09:00")
    assert hours.next_opening(zurich("2025-03-27", "13:00")) == zurich("2025-04-01", "09:00")


# ---------------------------------------------------------------------------------------------
# response_due: working hours only


@pytest.mark.parametrize(
    ("sent", "due"),
    [
        # 8 h on Monday, 8 h on Tuesday
        (zurich(MONDAY, "10:00"), zurich(TUESDAY, "16:00")),
        # overnight: 1 h on Tuesday, 10 on Wednesday, 5 on Thursday
        (zurich(TUESDAY, "17:00"), zurich("2025-03-27", "13:00")),
        # in the night: the clock starts at the next opening
        (zurich(TUESDAY, "23:00"), zurich("2025-03-27", "14:00")),
        # over the weekend: Friday 1 h, Monday 10 h, Tuesday 5 h
        (zurich("2025-03-21", "17:00"), zurich(TUESDAY, "13:00")),
        # sent on Saturday: Monday and Tuesday
        (zurich("2025-03-22", "11:00"), zurich(TUESDAY, "14:00")),
    ],
)
def test_response_due_counts_opening_hours(sent: dt.datetime, due: dt.datetime) -> None:
    assert hours.response_due(sent) == due


def test_an_answer_due_exactly_at_closing_is_due_that_day() -> None:
    assert hours.response_due(zurich(MONDAY, "08:00"), 10) == zurich(MONDAY, "18:00")
    assert hours.response_due(zurich(MONDAY, "17:00"), 2) == zurich(TUESDAY, "09:00")


def test_the_response_time_follows_the_setting(settings: Any) -> None:
    settings.MESSAGING_RESPONSE_HOURS = 4

    assert hours.response_due(zurich(MONDAY, "10:00")) == zurich(MONDAY, "14:00")


def test_summer_time_starting_over_the_weekend_keeps_office_hours() -> None:
    # Friday 28 March (UTC+1) 17:00 → Tuesday 1 April 13:00 (UTC+2)
    due = hours.response_due(zurich(FRIDAY, "17:00"))

    assert due == zurich("2025-04-01", "13:00")
    assert due.astimezone(dt.UTC) == dt.datetime(2025, 4, 1, 11, 0, tzinfo=dt.UTC)
    opening = hours.next_opening(zurich(SATURDAY, "12:00"))
    assert opening.astimezone(dt.UTC) == dt.datetime(2025, 3, 31, 6, 0, tzinfo=dt.UTC)


def test_summer_time_ending_over_the_weekend_keeps_office_hours() -> None:
    # Friday 24 October (UTC+2) 17:00 → Tuesday 28 October 13:00 (UTC+1)
    due = hours.response_due(zurich("2025-10-24", "17:00"))

    assert due.astimezone(dt.UTC) == dt.datetime(2025, 10, 28, 12, 0, tzinfo=dt.UTC)


def test_a_clinic_open_on_sundays_counts_wall_clock_hours_on_the_short_night(
    settings: Any,
) -> None:
    settings.MESSAGING_OPENING_HOURS = (frozenset(range(1, 8)), dt.time(8), dt.time(18))

    # Saturday 17:00 + 2 h: one hour on Saturday, one on Sunday from 08:00 summer time
    due = hours.response_due(zurich(SATURDAY, "17:00"), 2)

    assert due.astimezone(dt.UTC) == dt.datetime(2025, 3, 30, 7, 0, tzinfo=dt.UTC)
    assert timezone.localtime(due).time() == dt.time(9)


# ---------------------------------------------------------------------------------------------
# The automatic reply


def closed_today_and_tomorrow() -> tuple[frozenset[int], dt.time, dt.time]:
    """Open only the day after tomorrow, whatever day the test runs on."""
    after_tomorrow = (timezone.localdate() + dt.timedelta(days=2)).isoweekday()
    return frozenset({after_tomorrow}), dt.time(8), dt.time(18)


def automatic(thread: Thread) -> list[Message]:
    return list(Message.objects.filter(thread=thread, automatic=True).order_by("sent_at"))


def test_the_first_message_outside_hours_gets_an_automatic_reply(
    settings: Any, make_thread: Callable[..., Thread], patient: User
) -> None:
    settings.MESSAGING_OPENING_HOURS = closed_today_and_tomorrow()
    patient.preferred_language = "en"
    patient.save(update_fields=["preferred_language"])

    thread = make_thread()

    [reply] = automatic(thread)
    assert reply.author is None
    first = Message.objects.get(thread=thread, automatic=False)
    assert reply.sent_at > first.sent_at  # shown after the patient's message
    thread.refresh_from_db()
    assert thread.message_count == 2
    assert thread.awaiting_team  # the reply is no answer
    assert thread.response_due_at == hours.response_due(first.sent_at)
    with translation.override("en"):
        due = formats.date_format(timezone.localtime(thread.response_due_at), "DATETIME_FORMAT")
        opening = formats.date_format(
            timezone.localtime(hours.next_opening(first.sent_at)), "DATETIME_FORMAT"
        )
    assert due in reply.body
    assert opening in reply.body
    assert "144" in reply.body  # what to do in an emergency
    assert reply.body.startswith("Thank you for your message.")


def test_only_the_first_message_of_a_burst_gets_one(
    settings: Any, make_thread: Callable[..., Thread], patient: User, clinician: User
) -> None:
    settings.MESSAGING_OPENING_HOURS = closed_today_and_tomorrow()
    thread = make_thread()

    do_post_message(ThreadAccess(thread, patient), body="J'oubliais : j'ai de la fièvre.")
    do_post_message(ThreadAccess(thread, patient), body="38.5 ce soir.")

    assert len(automatic(thread)) == 1
    # the team answers (on call); the patient's next message starts a new burst
    do_post_message(ThreadAccess(thread, clinician), body="Prenez du paracétamol.")
    assert len(automatic(thread)) == 1
    do_post_message(ThreadAccess(thread, patient), body="Merci, et demain ?")
    assert len(automatic(thread)) == 2


def test_no_automatic_reply_during_opening_hours(
    settings: Any, make_thread: Callable[..., Thread]
) -> None:
    settings.MESSAGING_OPENING_HOURS = (
        frozenset(range(1, 8)),
        dt.time(0),
        dt.time(23, 59, 59, 999999),
    )

    thread = make_thread()

    assert automatic(thread) == []


def test_the_team_writing_outside_hours_gets_no_automatic_reply(
    settings: Any, make_thread: Callable[..., Thread], clinician: User
) -> None:
    settings.MESSAGING_OPENING_HOURS = closed_today_and_tomorrow()

    to_patient = make_thread(clinician, subject="Vos résultats", body="Tout est normal.")
    among_staff = make_thread(clinician, topic=Topic.CASE, subject="Avis", body="Qu'en dis-tu ?")

    assert automatic(to_patient) == [] and automatic(among_staff) == []


# ---------------------------------------------------------------------------------------------
# MESSAGING_OPENING_HOURS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1-5 08:00-18:00", (frozenset({1, 2, 3, 4, 5}), dt.time(8), dt.time(18))),
        ("1,3,5 07:30-12:00", (frozenset({1, 3, 5}), dt.time(7, 30), dt.time(12))),
        ("1-3,6 08:00-17:15", (frozenset({1, 2, 3, 6}), dt.time(8), dt.time(17, 15))),
        ("7 10:00-11:00", (frozenset({7}), dt.time(10), dt.time(11))),
        ("  1-7   00:00-23:59 ", (frozenset(range(1, 8)), dt.time(0), dt.time(23, 59))),
    ],
)
def test_opening_hours_are_read_from_the_environment(
    value: str, expected: tuple[frozenset[int], dt.time, dt.time]
) -> None:
    assert env_opening_hours("HOURS", "1-5 08:00-18:00", {"HOURS": value}) == expected


def test_opening_hours_default_when_unset_or_blank() -> None:
    default = (frozenset({1, 2, 3, 4, 5}), dt.time(8), dt.time(18))

    assert env_opening_hours("HOURS", "1-5 08:00-18:00", {}) == default
    assert env_opening_hours("HOURS", "1-5 08:00-18:00", {"HOURS": "  "}) == default


@pytest.mark.parametrize(
    "value",
    [
        "weekdays",
        "1-5",
        "1-5 08:00",
        "1-5 08:00-18:00 extra",
        "1-5 18:00-08:00",  # closes before it opens
        "1-5 08:00-08:00",
        "0-4 08:00-18:00",  # ISO weekdays are 1 (Monday) to 7
        "1-8 08:00-18:00",
        "5-1 08:00-18:00",  # no day at all
        "1-5 8h-18h",
        "1-5 25:00-26:00",
        "mon-fri 08:00-18:00",
    ],
)
def test_bad_opening_hours_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        env_opening_hours(
            "MESSAGING_OPENING_HOURS", "1-5 08:00-18:00", {"MESSAGING_OPENING_HOURS": value}
        )

    assert raised.value.name == "MESSAGING_OPENING_HOURS"
    assert str(raised.value).startswith("MESSAGING_OPENING_HOURS:")
    assert repr(value) in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MESSAGING_OPENING_HOURS", "1-5 18:00-08:00"), ("MESSAGING_RESPONSE_HOURS", "0")],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variable: str, value: str) -> None:
    result = run_manage("check", **{variable: value})

    assert result.returncode != 0
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
