"""Rule semantics without a database: above/below, N of M, rise/fall, hysteresis."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from apps.devices.services.thresholds import Point, RuleSpec, walk

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def points(
    *values: float, new_from: int = 0, step: dt.timedelta = dt.timedelta(hours=1)
) -> list[Point]:
    return [
        Point(i + 1, T0 + i * step, Decimal(str(v)), i >= new_from) for i, v in enumerate(values)
    ]


def fired_at(transitions: list) -> list[Decimal]:
    return [t.point.value for t in transitions if t.fired]


def test_above_fires_once_on_the_first_reading_past_the_limit() -> None:
    rule = RuleSpec("above", Decimal(160))

    firing, transitions = walk(rule, False, points(150, 160, 161, 175, 170))

    assert firing is True
    assert fired_at(transitions) == [Decimal(161)]  # 160 is not above 160; later ones: no flood


def test_below_fires_on_a_reading_under_the_limit() -> None:
    rule = RuleSpec("below", Decimal(92))

    firing, transitions = walk(rule, False, points(95, 93, 91))

    assert firing and fired_at(transitions) == [Decimal(91)]


def test_n_of_m_ignores_a_single_outlier_and_fires_on_the_second() -> None:
    rule = RuleSpec("below", Decimal(92), n_of=2, m_of=3)

    _firing, single = walk(rule, False, points(95, 89, 95, 95))
    firing, double = walk(rule, False, points(95, 89, 95, 90))

    assert single == []
    assert firing and fired_at(double) == [Decimal(90)]
    assert [p.value for p in double[0].breaching] == [Decimal(89), Decimal(90)]


def test_history_counts_towards_n_of_m_but_only_new_readings_fire() -> None:
    rule = RuleSpec("above", Decimal(160), n_of=2, m_of=3)

    # Two old breaches did not fire (say the rule did not exist yet): the new one completes it.
    firing, transitions = walk(rule, False, points(170, 150, 165, 171, new_from=3))

    assert firing and fired_at(transitions) == [Decimal(171)]


def test_hysteresis_keeps_a_hovering_value_from_flooding() -> None:
    rule = RuleSpec("above", Decimal(160), hysteresis=Decimal(10))

    firing, transitions = walk(rule, False, points(161, 158, 162, 155, 163, 149, 165))

    # 158 and 155 are back under 160 but not under 150: still the same episode.
    assert [(t.fired, t.point.value) for t in transitions] == [
        (True, Decimal(161)),
        (False, Decimal(149)),
        (True, Decimal(165)),
    ]
    assert firing is True


def test_without_hysteresis_every_crossing_is_a_new_episode() -> None:
    rule = RuleSpec("above", Decimal(160))

    _firing, transitions = walk(rule, False, points(161, 158, 162))

    assert fired_at(transitions) == [Decimal(161), Decimal(162)]


def test_an_already_firing_rule_does_not_fire_again() -> None:
    rule = RuleSpec("above", Decimal(160))

    firing, transitions = walk(rule, True, points(170, 171, new_from=1))

    assert firing and transitions == []


def test_weight_rise_over_a_window() -> None:
    rule = RuleSpec("rise", Decimal(2), window=dt.timedelta(days=3))
    day = dt.timedelta(days=1)

    slow = walk(rule, False, points(80, 80.6, 81.2, 81.8, 82.4, 83.0, step=day))
    fast = walk(rule, False, points(80, 80.5, 81.4, 82.6, step=day))

    # 0.6 kg a day: 1.8 kg over any 3 days, never more than 2.
    assert slow[1] == []
    # 80 → 82.6 within 3 days (the window includes its first day).
    assert fired_at(fast[1]) == [Decimal("82.6")]
    assert fast[1][0].amount == Decimal("2.6")


def test_a_rise_outside_the_window_does_not_count() -> None:
    rule = RuleSpec("rise", Decimal(2), window=dt.timedelta(days=2))
    day = dt.timedelta(days=1)

    _firing, transitions = walk(rule, False, points(80, 81, 82, 83, 84, step=day))

    assert transitions == []  # 1 kg a day: never more than 2 kg within 2 days


def test_fall_rule() -> None:
    rule = RuleSpec("fall", Decimal(20), window=dt.timedelta(hours=6))

    _firing, transitions = walk(rule, False, points(140, 135, 118))

    assert fired_at(transitions) == [Decimal(118)]
    assert transitions[0].amount == Decimal(22)


def test_trend_rule_re_arms_once_the_change_is_back_under_limit_minus_hysteresis() -> None:
    rule = RuleSpec("rise", Decimal(2), hysteresis=Decimal("0.5"), window=dt.timedelta(days=3))
    day = dt.timedelta(days=1)

    firing, transitions = walk(rule, False, points(80, 82.5, 82.4, 81.0, 80.9, step=day))

    # 80 → 82.5 fires; 82.4 (+2.4) still; 81.0 is +1.0 over 80 within 3 days: re-armed.
    assert [(t.fired, t.point.value) for t in transitions] == [
        (True, Decimal("82.5")),
        (False, Decimal("81.0")),
    ]
    assert firing is False
