"""`env_times`: lists of wall times from the environment, refused loudly when unusable."""

from __future__ import annotations

import pytest

from apps.core.env import ConfigError, env_times


def test_the_default_is_used_when_the_variable_is_unset_or_empty() -> None:
    assert env_times("T", ["08:00", "20:00"], environ={}) == ["08:00", "20:00"]
    assert env_times("T", ["08:00"], environ={"T": "  "}) == ["08:00"]


def test_times_are_read_and_trimmed() -> None:
    assert env_times("T", [], environ={"T": "07:30, 12:00,19:45"}) == ["07:30", "12:00", "19:45"]


@pytest.mark.parametrize(
    ("value", "count", "increasing", "message"),
    [
        ("8:00", (1, 4), False, "HH:MM"),
        ("25:00", (1, 4), False, "HH:MM"),
        ("noon", (1, 4), False, "HH:MM"),
        ("08:00,12:00,18:00", (4, 4), False, "expected 4 to 4 times"),
        ("22:30,07:00", (2, 2), True, "follow each other"),
    ],
)
def test_unusable_values_name_the_variable(
    value: str, count: tuple[int, int], increasing: bool, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        env_times(
            "CARE_DOSE_TIMES",
            [],
            count=count,
            increasing=increasing,
            environ={"CARE_DOSE_TIMES": value},
        )
    assert error.value.name == "CARE_DOSE_TIMES"


def test_quiet_hours_may_span_midnight() -> None:
    assert env_times("Q", [], count=(2, 2), environ={"Q": "22:30,07:00"}) == ["22:30", "07:00"]
