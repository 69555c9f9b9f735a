"""The decision-support engine: runs the active rules over a patient's data and keeps the
proposals in step with what they find.

A finding is (rule code, fingerprint). A new one becomes an open proposal with its evidence; a
finding seen before (same patient, rule code and fingerprint, whatever the proposal's status,
whichever version of the rule) is not proposed again, so a dismissed proposal stays dismissed.
An open proposal whose finding is gone — the data changed, or its rule was withdrawn — becomes
OUTDATED. Nothing is ever applied: proposals wait for a clinician (`proposals.py`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core.realtime import send_event_on_commit, user_group
from apps.notifications.services import notify
from apps.records.models import (
    AllergyIntolerance,
    CareTeamMember,
    MedicationStatement,
    Observation,
    Patient,
    Prescription,
)

from ...models import Proposal, Rule
from ..tasks import team_user_ids
from .evaluators import EVALUATORS
from .rules import active_rules
from .snapshot import PatientData

logger = logging.getLogger(__name__)

# Patients whose data changed within this are evaluated by the scheduled run.
RECENT = dt.timedelta(days=1)
ENGINE = "decision-support engine"


def proposals_url(patient_id: int) -> str:
    return reverse("care:patient_proposals", args=[patient_id])


def proposal_url(proposal: Proposal) -> str:
    return f"{proposals_url(proposal.patient_id)}#proposal-{proposal.pk}"


def proposal_event(proposal: Proposal) -> None:
    """Tell the care team's open pages that `proposal` appeared or changed (after commit)."""
    send_event_on_commit(
        "care.proposal",
        {
            "id": proposal.pk,
            "patient": proposal.patient_id,
            "status": proposal.status,
            "url": proposal_url(proposal),
        },
        groups=[user_group(pk) for pk in team_user_ids(proposal.patient_id)],
    )


def _notify_leads(proposal: Proposal) -> None:
    """The care-team lead hears of an important proposal; the text says nothing clinical."""
    leads = CareTeamMember.objects.filter(
        care_team__patient_id=proposal.patient_id,
        care_team__active=True,
        ended_at__isnull=True,
        is_lead=True,
        user__is_active=True,
    ).select_related("user")
    for member in leads:
        user = member.user
        with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
            title = _("A decision-support proposal needs your review")
            body = _("Open the patient's chart to see it.")
        notify(
            user,
            "care.support",
            title,
            body,
            proposal_url(proposal),
            ref=f"care.proposal:{proposal.pk}",
        )


def _evidence(rule: Rule, data: PatientData, evidence: dict[str, Any]) -> dict[str, Any]:
    """The finding's evidence with the rule version, the parameters applied and the patient."""
    return {
        **evidence,
        "rule": {"code": rule.code, "version": rule.version, "reference": rule.reference},
        "parameters": rule.parameters,
        "patient": {"age": data.age(), "sex": data.patient.sex, **evidence.get("patient", {})},
        "evaluated_at": data.now.isoformat(),
    }


def evaluate_patient(
    patient: Patient, *, now: dt.datetime | None = None, rules: Sequence[Rule] | None = None
) -> list[Proposal]:
    """Run the active rules (or `rules`) over `patient`; the new proposals it made.

    A bounded number of queries: the patient's medications and allergies once, then a few per
    rule (aggregates, not every reading), whatever the amount of data.
    """
    now = now or timezone.now()
    rules = list(active_rules()) if rules is None else list(rules)
    data = PatientData.load(patient, now)
    found: dict[tuple[str, str], tuple[Rule, dict[str, Any]]] = {}
    failed: set[str] = set()
    for rule in rules:
        try:
            findings = EVALUATORS[rule.kind](rule, data)
        except Exception:  # noqa: BLE001 - one faulty rule must not stop the others
            logger.exception(
                "decision-support rule %s v%s failed for patient %s",
                rule.code,
                rule.version,
                patient.pk,
            )
            failed.add(rule.code)
            continue
        for finding in findings:
            key = (rule.code, finding.fingerprint)
            found.setdefault(key, (rule, _evidence(rule, data, finding.evidence)))
    active_codes = {rule.code for rule in rules}
    created: list[Proposal] = []
    with transaction.atomic():
        known = set(
            Proposal.objects.filter(
                patient=patient, fingerprint__in=[fp for _code, fp in found]
            ).values_list("rule_code", "fingerprint")
        )
        for (code, fp), (rule, evidence) in found.items():
            if (code, fp) in known:
                continue
            try:
                with transaction.atomic():
                    proposal = Proposal.objects.create(
                        patient=patient,
                        rule=rule,
                        rule_code=code,
                        fingerprint=fp,
                        evidence=evidence,
                        created_at=now,
                    )
            except IntegrityError:
                continue  # a concurrent run proposed it first
            created.append(proposal)
            audit(
                Action.CREATE,
                obj=proposal,
                patient_id=str(patient.pk),
                detail={
                    "what": "decision-support proposal",
                    "by": ENGINE,
                    "rule": code,
                    "version": rule.version,
                },
            )
            proposal_event(proposal)
            if rule.severity == Rule.Severity.CRITICAL:
                _notify_leads(proposal)
        _outdate(patient, found, active_codes - failed, active_codes, now)
    return created


def _outdate(
    patient: Patient,
    found: dict[tuple[str, str], Any],
    evaluated: set[str],
    active_codes: set[str],
    now: dt.datetime,
) -> None:
    """Open proposals whose finding is gone, or whose rule was withdrawn, no longer apply."""
    for proposal in Proposal.objects.filter(patient=patient, status=Proposal.Status.OPEN):
        key = (proposal.rule_code, proposal.fingerprint)
        withdrawn = proposal.rule_code not in active_codes
        if key in found or not (withdrawn or proposal.rule_code in evaluated):
            continue
        # Conditional: a clinician deciding at this moment wins.
        changed = Proposal.objects.filter(pk=proposal.pk, status=Proposal.Status.OPEN).update(
            status=Proposal.Status.OUTDATED, decided_at=now
        )
        if not changed:
            continue
        proposal.status = Proposal.Status.OUTDATED
        proposal.decided_at = now
        audit(
            Action.UPDATE,
            obj=proposal,
            patient_id=str(patient.pk),
            detail={
                "what": "decision-support proposal",
                "by": ENGINE,
                "status": "outdated",
                "rule_withdrawn": withdrawn,
            },
        )
        proposal_event(proposal)


def patients_to_evaluate(now: dt.datetime, rules: Sequence[Rule]) -> list[int]:
    """Patients whose data changed lately, who started a drug a lab rule follows, or who have
    open proposals (which may have become outdated).

    "Changed" is the rows' `updated_at` (written on every save, indexed for FHIR
    `_lastUpdated`): new rows, and corrected, signed, cancelled or ended ones too. An index
    scan: `recorded_at` has no index of its own (see docs/performance.md).
    """
    since = now - RECENT
    ids: set[int] = set()
    for model in (Observation, Prescription, MedicationStatement, AllergyIntolerance):
        ids.update(model.objects.filter(updated_at__gte=since).values_list("patient_id", flat=True))
    ids.update(
        Proposal.objects.filter(status=Proposal.Status.OPEN).values_list("patient_id", flat=True)
    )
    # Lab follow-ups become due with time alone, without any new data.
    lab_days = [r.parameters["max_days"] for r in rules if r.kind == Rule.Kind.LAB_AFTER_DRUG]
    if lab_days:
        today = timezone.localdate(now)
        ids.update(
            MedicationStatement.objects.filter(
                status=MedicationStatement.Status.ACTIVE,
                started_on__gte=today - dt.timedelta(days=max(lab_days)),
            ).values_list("patient_id", flat=True)
        )
    return sorted(ids)


def evaluate_all(*, now: dt.datetime | None = None) -> int:
    """The scheduled run (every 15 minutes): the number of new proposals."""
    now = now or timezone.now()
    rules = list(active_rules())
    ids = patients_to_evaluate(now, rules)
    patients = Patient.objects.in_bulk(ids)
    made = 0
    for pk in ids:
        if pk in patients:
            made += len(evaluate_patient(patients[pk], now=now, rules=rules))
    return made
