"""Clinical writes by the care team: observations, annotations, signed notes and amendments."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit

from ..access import PatientAccess
from ..models import (
    ClinicalNote,
    Concept,
    Encounter,
    Observation,
    ObservationNote,
    Sensitivity,
    Source,
)
from . import RecordError


def _check_writer(access: PatientAccess, user: User) -> None:
    if not access.clinical or access.is_patient_self or user.role not in CLINICAL_ROLES:
        raise RecordError(_("Only members of the care team can change the record."))


@transaction.atomic
def do_record_observation(
    access: PatientAccess,
    user: User,
    *,
    code: Concept,
    value: Decimal,
    effective_at: dt.datetime | None = None,
    source: str = Source.MANUAL,
    request: HttpRequest | None = None,
) -> Observation:
    _check_writer(access, user)
    observation = Observation.objects.create(
        patient=access.patient,
        code=code,
        category="vital-signs" if code.category == "vital-signs" else "laboratory",
        value=value,
        unit=code.unit,
        ref_low=code.low,
        ref_high=code.high,
        effective_at=effective_at or timezone.now(),
        source=source,
        recorded_by=user,
    )
    audit(
        Action.CREATE,
        request=request,
        actor=user,
        obj=observation,
        patient_id=str(access.patient.pk),
        detail=access.audit_detail(),
    )
    return observation


@transaction.atomic
def do_annotate_observation(
    observation: Observation,
    access: PatientAccess,
    user: User,
    text: str,
    *,
    request: HttpRequest | None = None,
) -> ObservationNote:
    _check_writer(access, user)
    text = text.strip()
    if not text:
        raise RecordError(_("Write the annotation."))
    note = ObservationNote.objects.create(observation=observation, author=user, text=text)
    audit(
        Action.CREATE,
        request=request,
        actor=user,
        obj=note,
        patient_id=str(access.patient.pk),
        detail=access.audit_detail(observation=observation.pk),
    )
    return note


def note_signature(note: ClinicalNote) -> str:
    """A digest binding the text to its author, patient and signing time."""
    material = "\x1f".join(
        [
            str(note.patient_id),
            str(note.recorded_by_id),
            note.kind,
            note.title,
            note.text,
            note.signed_at.isoformat(),
            str(note.amends_id or ""),
        ]
    )
    return hashlib.sha256(material.encode()).hexdigest()


def signature_is_valid(note: ClinicalNote) -> bool:
    return note.signature == note_signature(note)


@transaction.atomic
def do_write_note(
    access: PatientAccess,
    user: User,
    *,
    kind: str,
    title: str,
    text: str,
    sensitivity: str = Sensitivity.NORMAL,
    encounter_id: int | None = None,
    request: HttpRequest | None = None,
) -> ClinicalNote:
    """Write and sign a note in one step: a signed note is never edited afterwards.

    `encounter_id` links it to one of the patient's encounters (a consultation's note).
    """
    _check_writer(access, user)
    if (
        encounter_id is not None
        and not Encounter.objects.filter(pk=encounter_id, patient=access.patient).exists()
    ):
        raise RecordError(_("This encounter is not one of the patient's."))
    if sensitivity not in access.sensitivities:
        raise RecordError(_("Your role may not write notes of this category."))
    if not text.strip() or not title.strip():
        raise RecordError(_("A note needs a title and a text."))
    note = ClinicalNote(
        patient=access.patient,
        kind=kind,
        title=title.strip(),
        text=text.strip(),
        sensitivity=sensitivity,
        recorded_by=user,
        signed_at=timezone.now(),
        encounter_id=encounter_id,
    )
    note.signature = note_signature(note)
    note.save()
    audit(
        Action.SIGN,
        request=request,
        actor=user,
        obj=note,
        patient_id=str(access.patient.pk),
        detail=access.audit_detail(),
    )
    return note


@transaction.atomic
def do_amend_note(
    original: ClinicalNote,
    access: PatientAccess,
    user: User,
    *,
    text: str,
    reason: str,
    request: HttpRequest | None = None,
) -> ClinicalNote:
    """Correct a note: the original stays readable, marked amended, linked to its correction."""
    _check_writer(access, user)
    original = ClinicalNote.objects.select_for_update().get(pk=original.pk)
    if original.status != ClinicalNote.Status.CURRENT:
        raise RecordError(_("This note has already been amended; amend the latest version."))
    if not reason.strip():
        raise RecordError(_("Say why the note is amended."))
    if not text.strip():
        raise RecordError(_("A note needs a title and a text."))
    amendment = ClinicalNote(
        patient=original.patient,
        kind=original.kind,
        title=original.title,
        text=text.strip(),
        sensitivity=original.sensitivity,
        recorded_by=user,
        signed_at=timezone.now(),
        amends=original,
        amendment_reason=reason.strip(),
    )
    amendment.signature = note_signature(amendment)
    amendment.save()
    original.status = ClinicalNote.Status.AMENDED
    original.save(update_fields=["status"])
    audit(
        Action.SIGN,
        request=request,
        actor=user,
        obj=amendment,
        patient_id=str(access.patient.pk),
        detail=access.audit_detail(amends=original.pk),
    )
    return amendment
