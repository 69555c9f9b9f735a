"""Draft prescriptions: written through the FHIR API, signed or discarded by a physician."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext as _

from apps.accounts.models import Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit

from ..access import PatientAccess, Via
from ..models import (
    MedicationRequest,
    Prescription,
)
from . import RecordError
from .prescriptions import (
    ITEM_FIELDS,
    PrescriptionWarning,
    _after_signing,
    _check_signing,
    _clean_items,
    _number,
    _signed_fields,
    check_prescription,
    warnings_fingerprint,
)


@dataclass(frozen=True)
class DraftReview:
    """What the physician sees before signing a draft: its lines, warnings and any blocker."""

    lines: list[MedicationRequest]
    warnings: list[PrescriptionWarning]
    fingerprint: str
    problem: str  # why the draft cannot be signed as it stands, or ""

    @property
    def replaced(self) -> list[MedicationRequest]:
        """The lines that take over from a current medication."""
        return [line for line in self.lines if line.replaces_id is not None]


def _audit(
    action: str,
    draft: Prescription,
    access: PatientAccess,
    by: User,
    request: HttpRequest | None,
    **detail: Any,
) -> None:
    """The audit row of a change to a draft (`detail` names it: draft-created, …)."""
    audit(
        action,
        request=request,
        actor=by,
        obj=draft,
        patient_id=str(draft.patient_id),
        detail=access.audit_detail(**detail),
    )


def may_sign_draft(access: PatientAccess | None, user: User) -> bool:
    """Physicians of the patient's care team (an emergency access is not enough)."""
    return (
        access is not None
        and access.via == Via.CARE_TEAM
        and access.user.pk == user.pk
        and user.role == Role.PHYSICIAN
    )


def _draft_items(lines: Sequence[MedicationRequest]) -> list[dict[str, Any]]:
    return [
        {
            "medication": line.medication,
            "replaces": line.replaces,
            **{f: getattr(line, f) for f in ITEM_FIELDS},
        }
        for line in lines
    ]


def _draft_lines(prescription: Prescription) -> list[MedicationRequest]:
    return list(
        prescription.items.select_related(
            "medication", "replaces__medication", "replaces__prescription"
        ).order_by("pk")
    )


def review_draft(prescription: Prescription) -> DraftReview:
    """The lines of a draft with the warnings signing it now would raise."""
    lines = _draft_lines(prescription)
    items = _draft_items(lines)
    problem = ""
    try:
        _clean_items(items)
    except RecordError as error:
        problem = str(error)
    warnings = check_prescription(prescription.patient, items) if items else []
    return DraftReview(lines, warnings, warnings_fingerprint(warnings), problem)


def _lock_draft(prescription: Prescription, access: PatientAccess, by: User) -> Prescription:
    if access.patient.pk != prescription.patient_id or not may_sign_draft(access, by):
        raise RecordError(
            _("Only a physician of the patient's care team can sign or discard a draft.")
        )
    draft = Prescription.objects.select_for_update().get(pk=prescription.pk)
    if draft.status != Prescription.Status.DRAFT:
        raise RecordError(_("This prescription is no longer a draft: it was signed already."))
    return draft


def do_sign_draft(
    prescription: Prescription,
    access: PatientAccess,
    prescriber: User,
    *,
    request: HttpRequest | None = None,
    override_reason: str = "",
    acknowledged: str | None = None,
    valid_days: int = 90,
) -> Prescription:
    """Sign a draft (made through the FHIR API) with the checks of a new prescription.

    The draft keeps its lines (and their FHIR ids) and becomes a prescription signed by
    `prescriber`, numbered, with a fresh verification code, current medications and a
    notification to the patient. Raises PrescriptionWarnings as `do_sign_prescription` does.
    """
    with transaction.atomic():
        draft = _lock_draft(prescription, access, prescriber)
        lines = _draft_lines(draft)
        rows, warnings, reason = _check_signing(
            access,
            prescriber,
            _draft_items(lines),
            override_reason=override_reason,
            acknowledged=acknowledged,
            valid_days=valid_days,
        )
        drafted_by = draft.prescriber_id
        for field, value in _signed_fields(valid_days, warnings, reason).items():
            setattr(draft, field, value)
        draft.prescriber = prescriber
        draft.number = _number(draft)
        draft.save()
        for line, row in zip(lines, rows, strict=True):
            for field in ITEM_FIELDS:
                setattr(line, field, row[field])
            # Saved one by one (at most MAX_ITEMS): each line's FHIR version goes up, since
            # its status and validity period change with the signature.
            line.save(update_fields=ITEM_FIELDS)
        _after_signing(draft, access, prescriber, rows, request, draft=True, drafted_by=drafted_by)
    return draft


# What a physician may adjust on a line of a draft before signing it.
LINE_FIELDS = ("dose", "frequency", "duration_days", "quantity", "instructions")


def do_change_draft_line(
    prescription: Prescription,
    access: PatientAccess,
    by: User,
    line_id: Any,
    changes: dict[str, Any],
    *,
    request: HttpRequest | None = None,
) -> MedicationRequest:
    """Adjust a line of a draft (dose, times a day, duration, quantity, instructions) before
    signing it, with the checks of a new prescription's line; audited with before and after."""
    with transaction.atomic():
        draft = _lock_draft(prescription, access, by)
        line = (
            draft.items.select_for_update().select_related("medication").filter(pk=line_id).first()
            if str(line_id).isdigit()
            else None
        )
        if line is None:
            raise RecordError(_("This line is not part of the draft."))
        before = {field: getattr(line, field) for field in LINE_FIELDS}
        item = {"medication": line.medication, **{f: getattr(line, f) for f in ITEM_FIELDS}}
        item.update({field: changes[field] for field in LINE_FIELDS if field in changes})
        row = _clean_items([item])[0]
        changed = [field for field in LINE_FIELDS if row[field] != before[field]]
        if not changed:
            return line
        for field in changed:
            setattr(line, field, row[field])
        line.save(update_fields=changed)
        _audit(
            Action.UPDATE,
            draft,
            access,
            by,
            request,
            prescription="draft-line-changed",
            line=line.pk,
            before={field: before[field] for field in changed},
            after={field: row[field] for field in changed},
        )
    return line


def do_remove_draft_line(
    prescription: Prescription,
    access: PatientAccess,
    by: User,
    line_id: Any,
    *,
    request: HttpRequest | None = None,
) -> None:
    """Take a medication out of a draft before signing it (its last one: discard the draft);
    audited with what the line held."""
    with transaction.atomic():
        draft = _lock_draft(prescription, access, by)
        lines = list(draft.items.select_for_update().select_related("medication").order_by("pk"))
        line = next((line for line in lines if str(line.pk) == str(line_id)), None)
        if line is None:
            raise RecordError(_("This line is not part of the draft."))
        if len(lines) == 1:
            raise RecordError(
                _("A draft keeps at least one medication: discard the draft instead.")
            )
        _audit(
            Action.UPDATE,
            draft,
            access,
            by,
            request,
            prescription="draft-line-removed",
            line=str(line.fhir_id),
            medication=line.medication.atc_code,
            dose=line.dose,
            frequency=line.frequency,
        )
        line.delete()


def do_discard_draft(
    prescription: Prescription,
    access: PatientAccess,
    by: User,
    *,
    request: HttpRequest | None = None,
) -> None:
    """Delete a draft and its lines; the audit row keeps what it held."""
    with transaction.atomic():
        draft = _lock_draft(prescription, access, by)
        lines = list(draft.items.select_related("medication").order_by("pk"))
        _audit(
            Action.DELETE,
            draft,
            access,
            by,
            request,
            prescription="draft-discarded",
            number=draft.number,
            drafted_by=draft.prescriber_id,
            items=[str(line.fhir_id) for line in lines],
            medications=[line.medication.atc_code for line in lines],
        )
        draft.delete()


def do_create_draft(
    access: PatientAccess,
    prescriber: User,
    items: Sequence[Mapping[str, Any]],
    *,
    request: HttpRequest | None = None,
) -> Prescription:
    """A draft prescription of `items` (dicts of MedicationRequest fields with a `medication`)
    for `access.patient`, written for `prescriber`, who signs or discards it on the draft page.

    Used by decision support to copy current lines for the physician to review; raises
    RecordError when `prescriber` may not sign drafts or a line is incomplete.
    """
    if not may_sign_draft(access, prescriber):
        raise RecordError(
            _("Only a physician of the patient's care team can prepare a draft prescription.")
        )
    rows = _clean_items(items)
    if any(
        row["replaces"] is not None and row["replaces"].patient_id != access.patient.pk
        for row in rows
    ):
        raise RecordError(_("A line can only replace a current medication of the same drug."))
    with transaction.atomic():
        draft = Prescription.objects.create(
            patient=access.patient,
            prescriber=prescriber,
            recorded_by=prescriber,
            status=Prescription.Status.DRAFT,
            # Unique placeholders: signing gives the real number and a fresh verification code.
            number=f"DRAFT-{secrets.token_hex(6)}",
            verification_token=secrets.token_urlsafe(24),
        )
        MedicationRequest.objects.bulk_create(
            MedicationRequest(
                patient=access.patient,
                prescription=draft,
                recorded_by=prescriber,
                sensitivity=draft.sensitivity,
                **row,
            )
            for row in rows
        )
        _audit(
            Action.CREATE,
            draft,
            access,
            prescriber,
            request,
            prescription="draft-created",
            number=draft.number,
            items=len(rows),
            medications=[row["medication"].atc_code for row in rows],
        )
    return draft
