"""Threshold rules: evaluating readings against them, and what physicians may change.

Evaluation runs inside the ingestion transaction, on the readings just stored, before the
messages are acknowledged: a reading is never acknowledged without its alert. The rules of the
batch's patients are locked (in primary-key order, so two ingestors cannot deadlock) and the
history each rule needs (the last M readings, and the trend window) is read in one query.

The decision itself (`walk`) is a pure function of the rule, its firing state and the points,
so the rule semantics are tested without a database.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection

from ..models import ThresholdRule

# Bound on the history read per (patient, measurement): a trend window longer than this many
# readings compares against the oldest of them (a heart-rate patch over days, for instance).
HISTORY_LIMIT = 2000


@dataclass(frozen=True)
class Point:
    pk: int
    at: dt.datetime
    value: Decimal
    new: bool


@dataclass(frozen=True)
class RuleSpec:
    """What `walk` needs of a rule (a ThresholdRule or an unsaved one under test)."""

    kind: str
    limit: Decimal
    n_of: int = 1
    m_of: int = 1
    hysteresis: Decimal = Decimal(0)
    window: dt.timedelta | None = None

    @classmethod
    def of(cls, rule: ThresholdRule) -> RuleSpec:
        return cls(rule.kind, rule.limit, rule.n_of, rule.m_of, rule.hysteresis, rule.window)


@dataclass(frozen=True)
class Transition:
    fired: bool  # True: the rule fires (raise an alert); False: it re-arms (back to normal)
    point: Point
    breaching: tuple[Point, ...] = ()
    amount: Decimal | None = None  # the change, for rise and fall rules


def _trend(rule: RuleSpec, points: Sequence[Point], index: int) -> Decimal | None:
    """How far the reading moved from the extreme of the window before it (None: no history)."""
    point = points[index]
    since = point.at - (rule.window or dt.timedelta(0))
    earlier = [p.value for p in points[:index] if since <= p.at <= point.at]
    if not earlier:
        return None
    if rule.kind == ThresholdRule.Kind.RISE:
        return point.value - min(earlier)
    return max(earlier) - point.value


def _measure(rule: RuleSpec, points: Sequence[Point], index: int) -> Decimal | None:
    """The quantity compared to the limit: the value, or its change for trend rules."""
    if rule.kind in (ThresholdRule.Kind.ABOVE, ThresholdRule.Kind.BELOW):
        return points[index].value
    return _trend(rule, points, index)


def breaches(rule: RuleSpec, points: Sequence[Point], index: int) -> bool:
    measured = _measure(rule, points, index)
    if measured is None:
        return False
    if rule.kind == ThresholdRule.Kind.BELOW:
        return measured < rule.limit
    return measured > rule.limit  # above, rise, fall: the quantity exceeds the limit


def back_to_normal(rule: RuleSpec, points: Sequence[Point], index: int) -> bool:
    """Past the limit by the hysteresis, the other way: only then does a fired rule re-arm."""
    measured = _measure(rule, points, index)
    if measured is None:
        return rule.kind in (ThresholdRule.Kind.RISE, ThresholdRule.Kind.FALL)
    if rule.kind == ThresholdRule.Kind.BELOW:
        return measured >= rule.limit + rule.hysteresis
    return measured <= rule.limit - rule.hysteresis


def walk(rule: RuleSpec, firing: bool, points: Sequence[Point]) -> tuple[bool, list[Transition]]:
    """Replay the new points in time order; the final firing state and the transitions."""
    transitions = []
    for index, point in enumerate(points):
        if not point.new:
            continue
        if not firing:
            recent = range(max(0, index - rule.m_of + 1), index + 1)
            breaching = tuple(points[i] for i in recent if breaches(rule, points, i))
            if len(breaching) >= rule.n_of:
                firing = True
                amount = _measure(rule, points, index) if rule.window else None
                transitions.append(Transition(True, point, breaching, amount))
        elif back_to_normal(rule, points, index):
            firing = False
            transitions.append(Transition(False, point))
    return firing, transitions


# ---------------------------------------------------------------------------------------------
# Against the database


@dataclass
class Evaluation:
    """The transitions of one batch, per locked rule."""

    rules: list[ThresholdRule] = field(default_factory=list)
    fired: list[tuple[ThresholdRule, Transition]] = field(default_factory=list)
    cleared: list[tuple[ThresholdRule, Transition]] = field(default_factory=list)


_HISTORY_SQL = """
SELECT k.patient_id, k.code_id, o.id, o.effective_at, o.value
FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::int[], %s::timestamptz[])
     AS k(patient_id, code_id, since, prior, until)
CROSS JOIN LATERAL (
    (SELECT id, effective_at, value FROM {table}
      WHERE patient_id = k.patient_id AND code_id = k.code_id AND effective_at < k.since
      ORDER BY effective_at DESC, id DESC LIMIT k.prior)
    UNION ALL
    (SELECT id, effective_at, value FROM {table}
      WHERE patient_id = k.patient_id AND code_id = k.code_id
        AND effective_at >= k.since AND effective_at <= k.until
      ORDER BY effective_at, id LIMIT {limit})
) AS o
"""


def _history(
    wanted: dict[tuple[int, int], tuple[dt.datetime, int, dt.datetime]],
    new_ids: set[int],
) -> dict[tuple[int, int], list[Point]]:
    """Per (patient, concept): readings from `since` to `until` and `prior` readings before."""
    from apps.records.models import Observation

    keys = list(wanted)
    table = connection.ops.quote_name(Observation._meta.db_table)
    params: list[Any] = [
        [k[0] for k in keys],
        [k[1] for k in keys],
        [wanted[k][0] for k in keys],
        [wanted[k][1] for k in keys],
        [wanted[k][2] for k in keys],
    ]
    found: dict[tuple[int, int], list[Point]] = defaultdict(list)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_HISTORY_SQL.format(table=table, limit=HISTORY_LIMIT), params)
            rows = cursor.fetchall()
    else:  # the zero-config SQLite database: the same rows, two queries per key
        rows = []
        for key, (since, prior, until) in wanted.items():
            same = Observation.objects.filter(patient_id=key[0], code_id=key[1])
            before = same.filter(effective_at__lt=since).order_by("-effective_at", "-pk")[:prior]
            during = same.filter(effective_at__gte=since, effective_at__lte=until).order_by(
                "effective_at", "pk"
            )[:HISTORY_LIMIT]
            for part in (before, during):
                rows += [(*key, *row) for row in part.values_list("pk", "effective_at", "value")]
    for patient_id, code_id, pk, at, value in rows:
        found[(patient_id, code_id)].append(Point(pk, at, value, pk in new_ids))
    for points in found.values():
        points.sort(key=lambda p: (p.at, p.pk))
    return found


def evaluate(observations: Iterable[Any], concept_codes: dict[int, str]) -> Evaluation:
    """Evaluate the active rules touched by freshly stored observations (same transaction).

    `observations` need `pk`, `patient_id`, `code_id` and `effective_at`; `concept_codes` maps
    concept ids to LOINC codes. The rules that change state are saved here.
    """
    new: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for obs in observations:
        code = concept_codes.get(obs.code_id)
        if code is not None:
            new[(obs.patient_id, code)].append(obs)
    evaluation = Evaluation()
    if not new:
        return evaluation
    patients = {patient for patient, _code in new}
    codes = {code for _patient, code in new}
    rules = list(
        ThresholdRule.objects.select_for_update()
        .filter(patient_id__in=patients, code__in=codes, active=True)
        .order_by("pk")
    )
    rules = [rule for rule in rules if (rule.patient_id, rule.code) in new]
    evaluation.rules = rules
    if not rules:
        return evaluation
    concept_ids = {code: pk for pk, code in concept_codes.items()}
    wanted: dict[tuple[int, int], tuple[dt.datetime, int, dt.datetime]] = {}
    for rule in rules:
        batch = new[(rule.patient_id, rule.code)]
        first = min(o.effective_at for o in batch)
        last = max(o.effective_at for o in batch)
        since = first - (rule.window or dt.timedelta(0))
        key = (rule.patient_id, concept_ids[rule.code])
        if key in wanted:
            old_since, old_prior, _until = wanted[key]
            wanted[key] = (min(old_since, since), max(old_prior, rule.m_of - 1), last)
        else:
            wanted[key] = (since, rule.m_of - 1, last)
    new_ids = {o.pk for batch in new.values() for o in batch}
    history = _history(wanted, new_ids)
    for rule in rules:
        points = history.get((rule.patient_id, concept_ids[rule.code]), [])
        firing, transitions = walk(RuleSpec.of(rule), rule.firing, points)
        for transition in transitions:
            target = evaluation.fired if transition.fired else evaluation.cleared
            target.append((rule, transition))
        if firing != rule.firing:
            rule.firing = firing
            ThresholdRule.objects.filter(pk=rule.pk).update(firing=firing)
    return evaluation
