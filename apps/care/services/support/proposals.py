"""Decisions on decision-support proposals: accept (creating the task or the draft
prescription) or dismiss with a reason. A proposal is decided once; both are audited and pushed
live to the care team (`care.proposal`).
"""

from __future__ import annotations

import re
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import PatientAccess
from apps.records.models import MedicationRequest, MedicationStatement, Prescription, Route
from apps.records.services import RecordError
from apps.records.services.prescription_drafts import do_create_draft, may_sign_draft

from ...access import is_clinician
from ...models import Proposal, Rule
from ...models.common import Origin
from .. import CareError
from ..tasks import do_create_task
from .engine import proposal_event

PLACEHOLDER_RE = re.compile(r"\{(\w+)\}")
REASON_MAX = 300
# A line copied from a current medication that has no prescription line behind it.
COPIED_DURATION_DAYS = 30


def _value(value: Any, language: str) -> str:
    if isinstance(value, dict):
        return str(value.get(language) or value.get("fr") or next(iter(value.values()), ""))
    return str(value)


def render_reason(proposal: Proposal, language: str | None = None) -> str:
    """The rule's reason in `language`, its {placeholders} filled from the evidence."""
    language = (language or translation_language())[:2]
    values = proposal.evidence.get("summary", {})
    template = proposal.rule.display_rationale(language)

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        return _value(values[key], language) if key in values else match.group(0)

    return PLACEHOLDER_RE.sub(fill, template)


def translation_language() -> str:
    return get_language() or "fr"


def data_text(proposal: Proposal, language: str) -> str:
    """The data a proposal used, as lines of text (for the task's instructions)."""
    evidence = proposal.evidence
    lines: list[str] = []
    series = evidence.get("series")
    if series and series.get("days"):
        label = _value(series["label"], language)
        lines.append(_("%(label)s, daily means:") % {"label": label})
        for day in series["days"]:
            lines.append(f"  {day['date']}: {day['mean']:g} {series['unit']} (n={day['n']})")
    elif evidence.get("observations"):
        lines.append(_("Results:"))
        for obs in evidence["observations"][:20]:
            lines.append(
                f"  {obs['at'][:10]} {_value(obs['label'], language)}: "
                f"{obs['value']:g} {obs['unit']}"
            )
    if evidence.get("medications"):
        lines.append(_("Medications:"))
        for med in evidence["medications"]:
            dose = med["dose"] + (f" × {med['per_day']}" if med.get("per_day") else "")
            lines.append(f"  {med['name']} ({med['atc']}) {dose}".rstrip())
    if evidence.get("allergies"):
        lines.append(_("Allergies:"))
        for allergy in evidence["allergies"]:
            lines.append(f"  {_value(allergy['substance'], language)} ({allergy['criticality']})")
    rule = evidence.get("rule", {})
    lines.append(
        _("Rule %(code)s, version %(version)s. %(reference)s")
        % {
            "code": rule.get("code", proposal.rule_code),
            "version": rule.get("version", proposal.rule.version),
            "reference": rule.get("reference", ""),
        }
    )
    return "\n".join(lines).strip()


def _check_decider(access: PatientAccess, proposal: Proposal) -> None:
    if not is_clinician(access.user) or access.is_patient_self or not access.clinical:
        raise CareError(_("Only clinicians of the care team decide on proposals."))
    if access.patient.pk != proposal.patient_id:
        raise CareError(_("This proposal belongs to another patient."))


def _lock_open(proposal: Proposal) -> Proposal:
    locked = Proposal.objects.select_for_update().select_related("rule").get(pk=proposal.pk)
    if locked.status != Proposal.Status.OPEN:
        raise CareError(
            _("This proposal was already decided (%(status)s).")
            % {"status": locked.get_status_display()}
        )
    return locked


def _draft_lines(proposal: Proposal) -> list[dict[str, Any]]:
    """The current lines of the drugs the proposal is about, copied for the physician."""
    meds = proposal.evidence.get("medications", [])
    line_ids = [m["line"] for m in meds if m.get("line")]
    statement_ids = [m["id"] for m in meds if m.get("id") and not m.get("line")]
    lines = MedicationRequest.objects.filter(
        pk__in=line_ids, patient_id=proposal.patient_id
    ).select_related("medication")
    # Each copied line takes over from the current medication it copies: signing ends it.
    current = {
        (statement.prescription_id, statement.medication_id): statement
        for statement in MedicationStatement.objects.filter(
            patient_id=proposal.patient_id,
            status=MedicationStatement.Status.ACTIVE,
            prescription_id__in=lines.values("prescription_id"),
        )
    }
    items: list[dict[str, Any]] = [
        {
            "medication": line.medication,
            "replaces": current.get((line.prescription_id, line.medication_id)),
            "dose": line.dose,
            "route": line.route,
            "frequency": line.frequency,
            "as_needed": line.as_needed,
            "duration_days": line.duration_days,
            "quantity": line.quantity,
            "instructions": line.instructions,
        }
        for line in lines.order_by("pk")
    ]
    statements = MedicationStatement.objects.filter(
        pk__in=statement_ids, patient_id=proposal.patient_id
    ).select_related("medication")
    for statement in statements.order_by("pk"):
        items.append(
            {
                "medication": statement.medication,
                "replaces": statement if statement.status == statement.Status.ACTIVE else None,
                "dose": (statement.dosage or statement.medication.strength or "1")[:60],
                "route": Route.ORAL,
                "frequency": 1,
                "as_needed": False,
                "duration_days": COPIED_DURATION_DAYS,
                "quantity": 1,
                "instructions": _("Copied from the current medications: check dose and times."),
            }
        )
    return items


def do_accept_proposal(
    access: PatientAccess,
    proposal: Proposal,
    *,
    assignee: User | None = None,
    request: HttpRequest | None = None,
) -> Proposal:
    """Accept: a task (for `assignee`, else the acceptor) or a draft prescription (physicians).

    Raises CareError when the user may not decide, or the proposal was decided already.
    """
    _check_decider(access, proposal)
    user = access.user
    with transaction.atomic():
        locked = _lock_open(proposal)
        rule = locked.rule
        language = translation_language()
        task = None
        prescription: Prescription | None = None
        if rule.action == Rule.Action.PRESCRIPTION:
            if not may_sign_draft(access, user):
                raise CareError(
                    _("Only a physician of the care team can accept a prescription change.")
                )
            items = _draft_lines(locked)
            if not items:
                raise CareError(_("The medications this proposal is about are no longer recorded."))
            try:
                prescription = do_create_draft(access, user, items, request=request)
            except RecordError as error:
                raise CareError(str(error)) from None
        else:
            instructions = f"{render_reason(locked, language)}\n\n{data_text(locked, language)}"
            task = do_create_task(
                access,
                kind=rule.task_kind,
                title=rule.display_title(language),
                instructions=instructions,
                assignee=assignee or user,
                origin=Origin.DECISION_SUPPORT,
                request=request,
            )
        now = timezone.now()
        updated = Proposal.objects.filter(pk=locked.pk, status=Proposal.Status.OPEN).update(
            status=Proposal.Status.ACCEPTED,
            decided_by=user,
            decided_at=now,
            task=task,
            prescription=prescription,
        )
        if not updated:
            raise CareError(_("This proposal was already decided."))
        locked.refresh_from_db()
        audit(
            Action.UPDATE,
            request=request,
            actor=user,
            obj=locked,
            patient_id=str(locked.patient_id),
            detail=access.audit_detail(
                what="decision-support proposal",
                decision="accepted",
                rule=locked.rule_code,
                task=task.pk if task else None,
                prescription=prescription.pk if prescription else None,
            ),
        )
        proposal_event(locked)
    return locked


def do_dismiss_proposal(
    access: PatientAccess,
    proposal: Proposal,
    reason: str,
    *,
    request: HttpRequest | None = None,
) -> Proposal:
    """Dismiss with a reason (required); the finding will not be proposed again."""
    _check_decider(access, proposal)
    reason = " ".join((reason or "").split())
    if not reason:
        raise CareError(_("Give the reason for dismissing the proposal."))
    if len(reason) > REASON_MAX:
        raise CareError(_("The reason is too long (300 characters at most)."))
    with transaction.atomic():
        locked = _lock_open(proposal)
        Proposal.objects.filter(pk=locked.pk, status=Proposal.Status.OPEN).update(
            status=Proposal.Status.DISMISSED,
            decided_by=access.user,
            decided_at=timezone.now(),
            dismiss_reason=reason,
        )
        locked.refresh_from_db()
        audit(
            Action.UPDATE,
            request=request,
            actor=access.user,
            obj=locked,
            patient_id=str(locked.patient_id),
            detail=access.audit_detail(
                what="decision-support proposal", decision="dismissed", rule=locked.rule_code
            ),
        )
        proposal_event(locked)
    return locked
