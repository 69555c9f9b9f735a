"""Saving a checked resource as rows of the record (called by `savers.save_resource`).

Choices made here:
- The recorder of what a staff member writes is that person (their token), whatever the
  resource claims; a backend system's recorder comes from the resource. Patients' home
  measurements are recorded by the patient.
- Observations are numeric (`valueQuantity`), of category vital-signs or laboratory. Their
  annotations (`note`) are append-only like the portal's: notes without an id are added,
  notes with an id must already belong to the observation and are kept as stored.
- MedicationRequest: e-prescriptions are signed in the practitioner portal, by a physician,
  after the allergy and interaction checks. Through the API a MedicationRequest can only be a
  **draft** (`status` = draft): without `groupIdentifier` it opens a new draft prescription
  whose prescriber is `requester` (or the staff member writing it) and must be a physician;
  with the `groupIdentifier` of a draft prescription of the same patient it adds a line to it.
  Signed prescriptions (and their lines) are never changed through the API.
- DocumentReference: a file is sent in `content[0].attachment.data` (base64) and goes through
  the portal's upload checks and encrypted storage; its content never changes afterwards
  (update changes the description, category, status, date, encounter and label only). A
  clinical note (category clinical-note) is signed when it is created, by the staff member
  writing it (or, for a system, its `author`); signed notes are never updated: a correction is
  a new note whose `relatesTo` replaces the old one, which becomes superseded.
- Files written for a document whose transaction is later undone stay on disk, encrypted and
  named by nobody (harmless; a clean-up job can sweep them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.http import HttpRequest
from django.utils import timezone, translation

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.records.fhir import SYS_AHV, SYS_PRESCRIPTION, from_fhir
from apps.records.fhir.helpers import _sensitivity, _user_id
from apps.records.models import (
    ClinicalNote,
    DocumentReference,
    MedicationRequest,
    Observation,
    ObservationNote,
    Patient,
    Prescription,
)
from apps.records.services import RecordError
from apps.records.services.clinical import note_signature
from apps.records.services.documents import store_file

from .auth import PATIENT, SYSTEM, Caller
from .errors import FhirHttpError
from .persist_care import save_task
from .registry import ResourceType

# Columns the database fills or that are not the client's to set, left out of `full_clean`.
_NOT_CHECKED = ("fhir_id", "version", "updated_at")


def _unprocessable(message: str, *paths: str, code: str = "processing") -> FhirHttpError:
    return FhirHttpError(422, message, code=code, expression=list(paths))


def _mapped(data: dict[str, Any]) -> Any:
    try:
        return from_fhir(data)
    except ValueError as error:  # FhirError, or bad base64/UTF-8 in a note's text
        raise _unprocessable(f"{data.get('resourceType')}: {error}.") from None


def _recorder(caller: Caller, claimed: int | None) -> int | None:
    if caller.kind == SYSTEM:
        return claimed
    return caller.user.pk if caller.user is not None else None


# Statuses FHIR lets a resource leave out (`rules` checks when they are required): stored
# blank, they are left out again when the resource is read back.
_OPTIONAL = ("clinical_status", "verification_status")


def _full_clean(obj: models.Model, type_name: str) -> None:
    """The model's own field checks (lengths, choices, foreign keys that exist), in English."""
    blank = [name for name in _OPTIONAL if getattr(obj, name, None) == ""]
    try:
        with translation.override("en"):
            obj.full_clean(exclude=[*_NOT_CHECKED, *blank], validate_unique=False)
    except ValidationError as error:
        with translation.override("en"):
            problems = "; ".join(
                f"{field}: {' '.join(str(m) for m in messages)}"
                for field, messages in error.message_dict.items()
            )
        raise _unprocessable(f"{type_name} cannot be stored: {problems}.") from None


def _save(obj: models.Model, type_name: str) -> None:
    _full_clean(obj, type_name)
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as error:
        raise FhirHttpError(
            409, f"{type_name} conflicts with a stored resource: {error}.", code="conflict"
        ) from None


def persist(
    caller: Caller,
    rtype: ResourceType,
    data: dict[str, Any],
    *,
    target: Any | None,
    patient: Patient | None,
    request: HttpRequest | None = None,
) -> Any:
    """Save `data` (already checked) as a new row or as `target`'s new version. `request`
    goes to the services that write their own audit rows (Task)."""
    if rtype.name == "Task":
        return save_task(caller, data, target, patient, request=request)
    saver = {
        "Patient": _patient,
        "Observation": _observation,
        "MedicationRequest": _medication_request,
        "DocumentReference": _document,
    }.get(rtype.name, _clinical)
    return saver(caller, data, target, patient)


def _patient(
    caller: Caller, data: dict[str, Any], target: Any | None, patient: Patient | None
) -> Patient:
    obj: Patient = _mapped(data)
    if obj.ahv_number:
        holder = Patient.objects.filter(ahv_number=obj.ahv_number).exclude(fhir_id=obj.fhir_id)
        if holder.exists():
            raise FhirHttpError(
                409,
                f"The AHV number {obj.ahv_number} ({SYS_AHV}) is already held by another "
                "patient: search Patient?identifier=<system>|<value> and update that one.",
                code="duplicate",
                expression=["Patient.identifier"],
            )
    _save(obj, "Patient")
    return obj


def _clinical(
    caller: Caller, data: dict[str, Any], target: Any | None, patient: Patient | None
) -> Any:
    """Condition and AllergyIntolerance: one row each, mapped as is."""
    obj = _mapped(data)
    stored_recorder = target.recorded_by_id if target is not None else None
    if target is not None and caller.kind != SYSTEM:
        obj.recorded_by_id = stored_recorder
    else:
        obj.recorded_by_id = _recorder(caller, obj.recorded_by_id)
    _save(obj, data["resourceType"])
    return obj


def _observation(
    caller: Caller, data: dict[str, Any], target: Any | None, patient: Patient | None
) -> Observation:
    fields: dict[str, Any] = _mapped(data)
    notes = fields.pop("notes")
    if fields["value"] is None:
        raise _unprocessable(
            "Observation.valueQuantity.value is required: the record stores numeric "
            "observations (send dataAbsentReason-only results to the laboratory system).",
            "Observation.valueQuantity",
        )
    if fields["effective_at"] is None:
        raise _unprocessable(
            "Observation.effectiveDateTime is required (when the value was measured).",
            "Observation.effective[x]",
        )
    if fields["category"] not in Observation.Category.values:
        raise _unprocessable(
            "Observation.category needs a coding of "
            "http://terminology.hl7.org/CodeSystem/observation-category: "
            f"{' or '.join(Observation.Category.values)}.",
            "Observation.category",
        )
    if not fields["unit"]:
        raise _unprocessable(
            "Observation.valueQuantity needs its UCUM unit (code or unit).",
            "Observation.valueQuantity.code",
        )
    obj = Observation(**fields)
    if fields["id"] is not None:
        obj._state.adding = False
    if target is not None and caller.kind != SYSTEM:
        obj.recorded_by_id = target.recorded_by_id
    else:
        obj.recorded_by_id = _recorder(caller, obj.recorded_by_id)
    if caller.kind == PATIENT and obj.source not in ("manual", "device"):
        obj.source = "device" if obj.device_id else "manual"
    _save(obj, "Observation")
    _observation_notes(caller, obj, notes)
    return obj


def _observation_notes(caller: Caller, obj: Observation, notes: list[dict[str, Any]]) -> None:
    stored = set(obj.notes.values_list("pk", flat=True))
    for index, note in enumerate(notes):
        path = f"Observation.note[{index}]"
        if note["id"] is not None:
            if note["id"] not in stored:
                raise _unprocessable(
                    f"{path}.id {note['id']} is not an annotation of this observation "
                    "(leave the id out to add a new one).",
                    f"{path}.id",
                )
            continue
        author = _recorder(caller, note["author_id"])
        if author is None:
            raise _unprocessable(
                f"{path}.authorReference is required (an identifier of our user system).",
                f"{path}.authorReference",
            )
        if not note["text"].strip():
            raise _unprocessable(f"{path}.text is empty.", f"{path}.text")
        row = ObservationNote(
            observation=obj,
            author_id=author,
            text=note["text"].strip(),
            created_at=note["created_at"] or timezone.now(),
        )
        _save(row, "Observation.note")


def _medication_request(
    caller: Caller, data: dict[str, Any], target: Any | None, patient: Patient | None
) -> MedicationRequest:
    assert patient is not None  # noqa: S101 - savers.compartment resolved it
    if data.get("status") != Prescription.Status.DRAFT:
        raise _unprocessable(
            f"MedicationRequest.status must be 'draft', not {data.get('status')!r}: "
            "prescriptions are signed by a physician in the practitioner portal, "
            "which makes them active.",
            "MedicationRequest.status",
            code="business-rule",
        )
    if target is not None and target.prescription.status != Prescription.Status.DRAFT:
        raise _unprocessable(
            f"MedicationRequest/{target.fhir_id} belongs to the signed prescription "
            f"{target.prescription.number}: signed prescriptions are never changed "
            "(cancel or renew them in the portal).",
            "MedicationRequest",
            code="business-rule",
        )
    group = data.get("groupIdentifier")
    if group:
        prescription = Prescription.objects.filter(
            number=group.get("value"), patient=patient
        ).first()
        if group.get("system") != SYS_PRESCRIPTION or prescription is None:
            raise _unprocessable(
                f"MedicationRequest.groupIdentifier {group.get('value')!r} is not a "
                "prescription of this patient (leave it out to open a new draft).",
                "MedicationRequest.groupIdentifier",
            )
        if prescription.status != Prescription.Status.DRAFT:
            raise _unprocessable(
                f"Prescription {prescription.number} is signed: lines cannot be added to it.",
                "MedicationRequest.groupIdentifier",
                code="business-rule",
            )
    else:
        prescription = _draft(caller, data, patient)
        data = {
            **data,
            "groupIdentifier": {"system": SYS_PRESCRIPTION, "value": prescription.number},
        }
    obj: MedicationRequest = _mapped(data)
    obj.sensitivity = prescription.sensitivity
    obj.recorded_by_id = _recorder(caller, obj.recorded_by_id)
    _save(obj, "MedicationRequest")
    return obj


def _draft(caller: Caller, data: dict[str, Any], patient: Patient) -> Prescription:
    """A new draft prescription for the requester (a physician), signed later in the portal."""
    requester = data.get("requester")
    prescriber_id = _user_id(requester) if requester else None
    if prescriber_id is None and caller.kind != SYSTEM and caller.user is not None:
        prescriber_id = caller.user.pk
    prescriber = (
        User.objects.filter(pk=prescriber_id, is_active=True).first() if prescriber_id else None
    )
    if prescriber is None or prescriber.role != Role.PHYSICIAN:
        raise _unprocessable(
            "MedicationRequest.requester must be an active physician (a Practitioner "
            "reference or an identifier of our user system): the physician who will sign.",
            "MedicationRequest.requester",
        )
    prescription = Prescription(
        patient=patient,
        prescriber=prescriber,
        recorded_by_id=_recorder(caller, prescriber.pk),
        status=Prescription.Status.DRAFT,
        number=f"DRAFT-{secrets.token_hex(6)}",
        verification_token=secrets.token_urlsafe(24),
        sensitivity=_sensitivity(data),
    )
    _save(prescription, "MedicationRequest (its draft prescription)")
    return prescription


def _attachment(data: dict[str, Any]) -> dict[str, Any]:
    return dict((data.get("content") or [{}])[0].get("attachment") or {})


def _attachment_bytes(attachment: dict[str, Any]) -> bytes | None:
    raw = attachment.get("data")
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise _unprocessable(
            "DocumentReference.content[0].attachment.data is not valid base64.",
            "DocumentReference.content[0].attachment.data",
        ) from None


def _document(
    caller: Caller, data: dict[str, Any], target: Any | None, patient: Patient | None
) -> Any:
    if not data.get("date"):  # a note is signed now; a file is recorded now
        data = {**data, "date": timezone.now().isoformat()}
    obj = _mapped(data)
    if isinstance(obj, ClinicalNote):
        return _note(caller, obj, data, target)
    assert isinstance(obj, DocumentReference)  # noqa: S101 - from_fhir's two DocumentReference kinds
    attachment = _attachment(data)
    content = _attachment_bytes(attachment)
    path = "DocumentReference.content[0].attachment"
    if target is not None:
        if content is not None and _digest(content) != target.sha256:
            raise _unprocessable(
                f"{path}.data: a document's content never changes; add a new "
                "DocumentReference instead.",
                f"{path}.data",
                code="business-rule",
            )
        for name in ("content_type", "size", "sha256", "filename"):
            setattr(obj, name, getattr(target, name))
        obj.recorded_by_id = target.recorded_by_id
        _save(obj, "DocumentReference")
        return obj
    if not content:
        raise _unprocessable(
            f"{path}.data is required: send the file itself (base64), a PDF, JPEG or PNG.",
            f"{path}.data",
        )
    declared = attachment.get("contentType")
    try:
        stored = store_file(content, attachment.get("title") or "document", add_extension=True)
    except RecordError as error:
        raise _unprocessable(f"{path}: {error}", f"{path}.data") from None
    try:
        if declared and declared.split(";")[0].strip() != stored.content_type:
            raise _unprocessable(
                f"{path}.contentType says {declared!r} but the data is {stored.content_type}.",
                f"{path}.contentType",
            )
        for name, value in stored.fields().items():
            setattr(obj, name, value)
        obj.title = (obj.title or stored.filename)[:200]
        obj.recorded_by_id = _recorder(caller, obj.recorded_by_id)
        _save(obj, "DocumentReference")
    except BaseException:
        stored.discard()
        raise
    return obj


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _note(caller: Caller, obj: ClinicalNote, data: dict[str, Any], target: Any | None) -> Any:
    if target is not None:
        raise _unprocessable(
            "Signed clinical notes are never changed: create a new DocumentReference whose "
            "relatesTo (code replaces) targets this one, with the amendment reason.",
            "DocumentReference",
            code="business-rule",
        )
    author_id = _recorder(caller, obj.recorded_by_id)
    author = User.objects.filter(pk=author_id, is_active=True).first() if author_id else None
    if author is None or author.role not in CLINICAL_ROLES:
        raise _unprocessable(
            "DocumentReference.author[0] must be an active member of the clinical staff "
            "(the note is signed in their name).",
            "DocumentReference.author",
        )
    if not obj.text.strip() or not obj.title.strip():
        raise _unprocessable(
            "A clinical note needs a description (its title) and a text "
            "(content[0].attachment.data, base64 UTF-8).",
            "DocumentReference.description",
        )
    obj.recorded_by_id = author.pk
    obj.signed_at = timezone.now()
    obj.status = ClinicalNote.Status.CURRENT
    if obj.amends_id is not None:
        original = ClinicalNote.objects.select_for_update().get(pk=obj.amends_id)
        if original.status != ClinicalNote.Status.CURRENT:
            raise _unprocessable(
                f"DocumentReference/{original.fhir_id} was already amended: amend the latest "
                "version.",
                "DocumentReference.relatesTo",
                code="business-rule",
            )
        if not obj.amendment_reason.strip():
            raise _unprocessable(
                "An amendment needs its reason (extension amendment-reason).",
                "DocumentReference.extension",
            )
        original.status = ClinicalNote.Status.AMENDED
        original.save(update_fields=["status"])
    obj.signature = note_signature(obj)
    _save(obj, "DocumentReference")
    return obj
