"""Live readings: each stored batch pushes the new values to whoever has a page open.

One event per patient per batch, sent to the personal group of each online care-team member
and of the patient; people with no open page cost nothing (one cache lookup for the batch).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from apps.core import presence
from apps.core.realtime import send_events_on_commit, user_group
from apps.records.models import Patient
from apps.records.services.care_team import clinical_memberships

from ..models import SEVERITY_RANK, ThresholdRule

READING_EVENT = "monitoring.reading"


def reading_status(value: Decimal, rules: Iterable[ThresholdRule], interpretation: str = "") -> str:
    """critical / warning / info when a level rule is crossed; else high / low / normal."""
    worst = ""
    for rule in rules:
        crossed = (rule.kind == ThresholdRule.Kind.ABOVE and value > rule.limit) or (
            rule.kind == ThresholdRule.Kind.BELOW and value < rule.limit
        )
        if crossed and (not worst or SEVERITY_RANK[rule.severity] > SEVERITY_RANK[worst]):
            worst = rule.severity
    if worst:
        return worst
    return {"H": "high", "HH": "high", "L": "low", "LL": "low"}.get(interpretation, "normal")


def viewers(patient_ids: Iterable[int]) -> dict[int, set[int]]:
    """Per patient, the user ids that may see its readings live: care team and the patient."""
    patient_ids = list(patient_ids)
    found: dict[int, set[int]] = defaultdict(set)
    members = clinical_memberships(patient_ids).values_list("care_team__patient_id", "user_id")
    for patient_id, user_id in members:
        found[patient_id].add(user_id)
    owners = Patient.objects.filter(pk__in=patient_ids, user__isnull=False).values_list(
        "pk", "user_id"
    )
    for patient_id, user_id in owners:
        found[patient_id].add(user_id)
    return found


def push_readings(
    observations: Sequence[Any],
    concept_codes: dict[int, str],
    rules: Iterable[ThresholdRule] = (),
) -> int:
    """Queue (on commit) one event per patient to its online viewers; the number queued."""
    if not observations or not presence.anyone_online():
        return 0
    audience = viewers({o.patient_id for o in observations})
    online = presence.online({user for users in audience.values() for user in users})
    if not online:
        return 0
    by_rule: dict[tuple[int, str], list[ThresholdRule]] = defaultdict(list)
    for rule in rules:
        by_rule[(rule.patient_id, rule.code)].append(rule)
    per_patient: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for obs in observations:
        if not audience.get(obs.patient_id, set()) & online:
            continue
        code = concept_codes.get(obs.code_id, "")
        per_patient[obs.patient_id].append(
            {
                "code": code,
                "value": float(obs.value),
                "unit": obs.unit,
                "at": obs.effective_at.isoformat(),
                "status": reading_status(
                    obs.value, by_rule.get((obs.patient_id, code), ()), obs.interpretation
                ),
            }
        )
    events = [
        (
            READING_EVENT,
            {"patient": patient_id, "readings": readings},
            [user_group(user) for user in sorted(audience[patient_id] & online)],
        )
        for patient_id, readings in per_patient.items()
    ]
    send_events_on_commit(events)
    return len(events)
