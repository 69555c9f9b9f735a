"""E-prescriptions: safety checks, signing, cancel and renew, the PDF, public verification."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.accounts.models import Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.notifications.services import notify

from ..access import PatientAccess, Via, check_patient_access
from ..models import (
    AllergyIntolerance,
    DrugInteraction,
    Encounter,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Patient,
    Practitioner,
    Prescription,
    Route,
    Severity,
)
from . import RecordError

MAX_ITEMS = 20
ITEM_FIELDS = (
    "dose",
    "route",
    "frequency",
    "as_needed",
    "duration_days",
    "quantity",
    "instructions",
)
SEVERITY_RANK = {"minor": 0, "moderate": 1, "major": 2, "contraindicated": 3}


@dataclass(frozen=True)
class PrescriptionWarning:
    """One reason to think twice before signing (named so as not to shadow `Warning`)."""

    kind: str  # "allergy" or "interaction"
    severity: str  # a `Severity` value
    message: str  # translated into the active language
    codes: tuple[str, ...]  # the ATC codes or classes involved

    @property
    def severity_label(self) -> str:
        return str(Severity(self.severity).label) if self.severity in Severity.values else ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["codes"] = list(self.codes)
        return data


class PrescriptionWarnings(RecordError):
    """Signing stopped on warnings: show them and ask for a reason to override."""

    def __init__(self, warnings: list[PrescriptionWarning]) -> None:
        super().__init__(_("Check the warnings and give a reason to sign anyway."))
        self.warnings = warnings
        self.fingerprint = warnings_fingerprint(warnings)


def warnings_fingerprint(warnings: Sequence[PrescriptionWarning]) -> str:
    """Identifies a set of warnings, so an override only covers the warnings that were shown."""
    keys = sorted({(w.kind, w.severity, *w.codes) for w in warnings})
    return hashlib.sha256(json.dumps(keys).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Safety checks


def _prefixes(codes: set[str]) -> set[str]:
    return {code[:n] for code in codes for n in range(1, len(code) + 1)}


def _matches(interaction: DrugInteraction, first: str, second: str) -> bool:
    a, b = interaction.atc_a.upper(), interaction.atc_b.upper()
    return (first.startswith(a) and second.startswith(b)) or (
        first.startswith(b) and second.startswith(a)
    )


def check_prescription(
    patient: Patient,
    items: Sequence[Mapping[str, Any]],
    *,
    exclude_prescription: Prescription | None = None,
) -> list[PrescriptionWarning]:
    """Allergies and interactions raised by `items` (dicts with a `medication`), worst first.

    Three queries whatever the number of items. The check deliberately reads every active
    allergy and medication of the patient, sensitive ones included: safety comes first.
    `exclude_prescription` leaves out the medications of a prescription being renewed.
    """
    new_meds: list[Medication] = []
    for item in items:
        medication = item["medication"]
        if medication.pk not in {m.pk for m in new_meds}:
            new_meds.append(medication)
    allergies = list(
        AllergyIntolerance.objects.filter(patient=patient, clinical_status="active")
        .exclude(substance__atc_prefix="")
        .select_related("substance")
    )
    current_qs = MedicationStatement.objects.filter(patient=patient, status="active")
    # What the new lines replace stops when they are signed: it is not checked against them.
    replaced = [item["replaces"].pk for item in items if item.get("replaces") is not None]
    if replaced:
        current_qs = current_qs.exclude(pk__in=replaced)
    if exclude_prescription is not None:
        current_qs = current_qs.exclude(prescription=exclude_prescription)
    current = [s.medication for s in current_qs.select_related("medication")]
    codes = {m.atc_code.upper() for m in [*new_meds, *current] if m.atc_code}
    prefixes = _prefixes(codes)
    interactions = list(
        DrugInteraction.objects.filter(atc_a__in=prefixes, atc_b__in=prefixes).order_by("pk")
    )

    found: list[PrescriptionWarning] = []
    for medication in new_meds:
        code = medication.atc_code.upper()
        for allergy in allergies:
            prefix = allergy.substance.atc_prefix.upper()
            if code.startswith(prefix):
                found.append(
                    PrescriptionWarning(
                        kind="allergy",
                        severity="contraindicated" if allergy.criticality == "high" else "major",
                        message=_(
                            "Allergy: the patient is allergic to %(substance)s; %(drug)s "
                            "(%(code)s) belongs to the class %(prefix)s."
                        )
                        % {
                            "substance": allergy.substance.label,
                            "drug": medication.name,
                            "code": code,
                            "prefix": prefix,
                        },
                        codes=(prefix, code),
                    )
                )

    seen: set[tuple[int, frozenset[int]]] = set()

    def pair(first: Medication, second: Medication, template: str) -> None:
        for interaction in interactions:
            key = (interaction.pk, frozenset({first.pk, second.pk}))
            if key in seen:
                continue
            if _matches(interaction, first.atc_code.upper(), second.atc_code.upper()):
                seen.add(key)
                found.append(
                    PrescriptionWarning(
                        kind="interaction",
                        severity=interaction.severity,
                        message=template
                        % {
                            "severity": interaction.get_severity_display(),
                            "drug": first.name,
                            "other": second.name,
                            "text": interaction.text,
                        },
                        codes=(first.atc_code.upper(), second.atc_code.upper()),
                    )
                )

    with_current = _(
        "Interaction (%(severity)s) between %(drug)s and %(other)s, a current medication: %(text)s"
    )
    within = _(
        "Interaction (%(severity)s) between %(drug)s and %(other)s, both in this "
        "prescription: %(text)s"
    )
    for index, medication in enumerate(new_meds):
        for other in current:
            pair(medication, other, with_current)
        for other in new_meds[index + 1 :]:
            pair(medication, other, within)
    found.sort(key=lambda w: -SEVERITY_RANK.get(w.severity, 0))
    return found


# ---------------------------------------------------------------------------------------------
# Signing, cancelling, renewing


def check_prescriber(access: PatientAccess, prescriber: User) -> Practitioner:
    """The prescriber's registration, or RecordError saying why they may not sign."""
    if not access.clinical or access.is_patient_self or access.user.pk != prescriber.pk:
        raise RecordError(_("Only members of the care team can prescribe."))
    if prescriber.role != Role.PHYSICIAN:
        raise RecordError(_("Only physicians can sign prescriptions."))
    practitioner = (
        Practitioner.objects.filter(user=prescriber).exclude(registration_number="").first()
    )
    if practitioner is None:
        raise RecordError(
            _(
                "Your professional registration number is missing: ask an administrator to "
                "add it before you sign prescriptions."
            )
        )
    return practitioner


def _replaced(item: Mapping[str, Any]) -> MedicationStatement | None:
    """The current medication a line takes over from: one of the same medication."""
    replaces = item.get("replaces")
    if replaces is None:
        return None
    if (
        not isinstance(replaces, MedicationStatement)
        or replaces.medication_id != item["medication"].pk
    ):
        raise RecordError(_("A line can only replace a current medication of the same drug."))
    return replaces


def _clean_items(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if not items:
        raise RecordError(_("Add at least one medication."))
    if len(items) > MAX_ITEMS:
        raise RecordError(_("A prescription holds at most %(n)s medications.") % {"n": MAX_ITEMS})
    cleaned = []
    for item in items:
        if not isinstance(item.get("medication"), Medication):
            raise RecordError(_("Choose a medication from the list."))
        row = {
            "medication": item["medication"],
            "dose": str(item.get("dose", "")).strip(),
            "route": item.get("route") or Route.ORAL,
            "frequency": int(item.get("frequency") or 0),
            "as_needed": bool(item.get("as_needed")),
            "duration_days": int(item.get("duration_days") or 0),
            "quantity": int(item.get("quantity") or 0),
            "instructions": str(item.get("instructions") or "").strip(),
            "replaces": _replaced(item),
        }
        if not row["dose"]:
            raise RecordError(_("Give the dose of each medication."))
        if row["route"] not in Route.values:
            raise RecordError(_("Choose a route of administration from the list."))
        if min(row["frequency"], row["duration_days"], row["quantity"]) < 1:
            raise RecordError(_("Times per day, duration and quantity must be at least 1."))
        cleaned.append(row)
    return cleaned


def dosage_text(item: Mapping[str, Any]) -> str:
    text = _("%(dose)s, %(route)s, %(times)s times a day") % {
        "dose": item["dose"],
        "route": Route(item["route"]).label,
        "times": item["frequency"],
    }
    if item["as_needed"]:
        text += ", " + _("as needed")
    return text


def _notify_patient(prescription: Prescription) -> None:
    user = prescription.patient.user
    if user is None or not user.is_active:
        return
    # The title may travel by email: no drug names, in the patient's language.
    with translation.override(prescription.patient.preferred_language):
        title = _("A new prescription is available")
        body = _("Open your record to read and download it.")
    link = reverse("records:prescription", args=[prescription.pk])
    transaction.on_commit(lambda: notify(user, "record", title, body, link))


def _check_signing(
    access: PatientAccess,
    prescriber: User,
    items: Sequence[Mapping[str, Any]],
    *,
    override_reason: str,
    acknowledged: str | None,
    valid_days: int,
    renewed_from: Prescription | None = None,
) -> tuple[list[dict[str, Any]], list[PrescriptionWarning], str]:
    """The cleaned lines, the warnings and the override reason, or the error stopping signing."""
    check_prescriber(access, prescriber)
    rows = _clean_items(items)
    if not 1 <= valid_days <= 366:
        raise RecordError(_("A prescription is valid for 1 to 366 days."))
    warnings = check_prescription(access.patient, rows, exclude_prescription=renewed_from)
    override_reason = override_reason.strip()
    if warnings and (
        not override_reason
        or (acknowledged is not None and acknowledged != warnings_fingerprint(warnings))
    ):
        raise PrescriptionWarnings(warnings)
    return rows, warnings, override_reason if warnings else ""


def _signed_fields(
    valid_days: int, warnings: Sequence[PrescriptionWarning], override_reason: str
) -> dict[str, Any]:
    """What signing sets on a prescription, whether written in the portal or drafted."""
    now = timezone.now()
    return {
        "status": Prescription.Status.ACTIVE,
        # A fresh secret at signing: whatever saw a draft never saw the code on the paper.
        "verification_token": secrets.token_urlsafe(24),
        "signed_at": now,
        "valid_until": timezone.localdate(now) + dt.timedelta(days=valid_days),
        "warnings": [w.as_dict() for w in warnings],
        "override_reason": override_reason,
    }


def _number(prescription: Prescription) -> str:
    # From the primary key, which PostgreSQL's sequence makes unique under any concurrency.
    assert prescription.signed_at is not None  # noqa: S101 - only signed ones are numbered
    return f"RX-{timezone.localdate(prescription.signed_at).year}-{prescription.pk:06d}"


def _end_replaced(
    prescription: Prescription, rows: Sequence[Mapping[str, Any]], today: dt.date
) -> list[int]:
    """End the current medications the signed lines replace (still active ones, of this
    patient); a prescription none of whose medications is still current is completed.
    The ids of the ended ones."""
    ids = [row["replaces"].pk for row in rows if row.get("replaces") is not None]
    if not ids:
        return []
    replaced = MedicationStatement.objects.filter(
        pk__in=ids, patient_id=prescription.patient_id, status=MedicationStatement.Status.ACTIVE
    )
    # Locked: of two drafts replacing the same medication, signed at once, one ends it.
    ended = list(replaced.select_for_update(of=("self",)).values_list("pk", flat=True))
    old_prescriptions = set(
        replaced.exclude(prescription=None).values_list("prescription_id", flat=True)
    )
    replaced.update(
        status=MedicationStatement.Status.COMPLETED,
        ended_on=today,
        version=F("version") + 1,
        updated_at=timezone.now(),
    )
    still_current = MedicationStatement.objects.filter(
        prescription_id=OuterRef("pk"), status=MedicationStatement.Status.ACTIVE
    )
    finished = Prescription.objects.filter(
        pk__in=old_prescriptions, status=Prescription.Status.ACTIVE
    ).exclude(Exists(still_current))
    for old in finished.select_for_update(of=("self",)):
        # Saved (not updated in bulk): its FHIR version goes up with its status.
        old.status = Prescription.Status.COMPLETED
        old.save(update_fields=["status"])
    return ended


def _after_signing(
    prescription: Prescription,
    access: PatientAccess,
    prescriber: User,
    rows: Sequence[Mapping[str, Any]],
    request: HttpRequest | None,
    **detail: Any,
) -> None:
    """The current medications, the audit row and the patient's notification of a signature."""
    today = timezone.localdate(prescription.signed_at)
    replaced = _end_replaced(prescription, rows, today)
    if replaced:
        detail["replaced"] = replaced
    MedicationStatement.objects.bulk_create(
        MedicationStatement(
            patient=prescription.patient,
            recorded_by=prescriber,
            sensitivity=prescription.sensitivity,
            medication=row["medication"],
            dosage=dosage_text(row)[:200],
            status=MedicationStatement.Status.ACTIVE,
            started_on=today,
            ended_on=today + dt.timedelta(days=row["duration_days"]),
            prescription=prescription,
        )
        for row in rows
    )
    audit(
        Action.SIGN,
        request=request,
        actor=prescriber,
        obj=prescription,
        patient_id=str(prescription.patient_id),
        detail=access.audit_detail(
            number=prescription.number,
            items=len(rows),
            warnings=len(prescription.warnings),
            overridden=bool(prescription.warnings),
            **detail,
        ),
    )
    _notify_patient(prescription)


def _sign(
    access: PatientAccess,
    prescriber: User,
    items: Sequence[Mapping[str, Any]],
    *,
    override_reason: str,
    acknowledged: str | None,
    valid_days: int,
    request: HttpRequest | None,
    encounter: Encounter | None = None,
    renewed_from: Prescription | None = None,
) -> Prescription:
    rows, warnings, reason = _check_signing(
        access,
        prescriber,
        items,
        override_reason=override_reason,
        acknowledged=acknowledged,
        valid_days=valid_days,
        renewed_from=renewed_from,
    )
    patient = access.patient
    with transaction.atomic():
        prescription = Prescription.objects.create(
            patient=patient,
            prescriber=prescriber,
            recorded_by=prescriber,
            # Unique placeholder until the primary key gives the real number.
            number=f"tmp-{secrets.token_hex(8)}",
            renewed_from=renewed_from,
            encounter=encounter,
            **_signed_fields(valid_days, warnings, reason),
        )
        prescription.number = _number(prescription)
        prescription.save(update_fields=["number"])
        MedicationRequest.objects.bulk_create(
            MedicationRequest(
                patient=patient, prescription=prescription, recorded_by=prescriber, **row
            )
            for row in rows
        )
        _after_signing(
            prescription,
            access,
            prescriber,
            rows,
            request,
            renewed_from=renewed_from.pk if renewed_from else None,
        )
    return prescription


def do_sign_prescription(
    access: PatientAccess,
    prescriber: User,
    items: list[dict[str, Any]],
    *,
    override_reason: str = "",
    acknowledged: str | None = None,
    valid_days: int = 90,
    encounter: Encounter | None = None,
    request: HttpRequest | None = None,
) -> Prescription:
    """Sign a new prescription of `items` (dicts of MedicationRequest fields).

    Raises PrescriptionWarnings when there are warnings and no override reason, or when
    `acknowledged` (the fingerprint of the warnings the prescriber saw) no longer matches.
    """
    return _sign(
        access,
        prescriber,
        items,
        override_reason=override_reason,
        acknowledged=acknowledged,
        valid_days=valid_days,
        encounter=encounter,
        request=request,
    )


def may_cancel(prescription: Prescription, access: PatientAccess | None, user: User) -> bool:
    """The prescriber, or a physician of the patient's care team."""
    if access is None or not access.clinical or access.is_patient_self:
        return False
    if user.pk == prescription.prescriber_id:
        return True
    return user.role == Role.PHYSICIAN and access.via == Via.CARE_TEAM


@transaction.atomic
def do_cancel_prescription(
    prescription: Prescription, by: User, reason: str, request: HttpRequest | None = None
) -> Prescription:
    reason = reason.strip()
    if not reason:
        raise RecordError(_("Give the reason for cancelling."))
    access = check_patient_access(by, prescription.patient_id)
    if access is None or not may_cancel(prescription, access, by):
        raise RecordError(
            _("Only the prescriber or a physician of the care team can cancel a prescription.")
        )
    prescription = Prescription.objects.select_for_update().get(pk=prescription.pk)
    if prescription.status != Prescription.Status.ACTIVE:
        raise RecordError(_("Only a valid prescription can be cancelled."))
    prescription.status = Prescription.Status.CANCELLED
    prescription.cancelled_at = timezone.now()
    prescription.cancel_reason = reason[:300]
    prescription.save(update_fields=["status", "cancelled_at", "cancel_reason"])
    MedicationStatement.objects.filter(
        prescription=prescription, status=MedicationStatement.Status.ACTIVE
    ).update(status=MedicationStatement.Status.STOPPED, ended_on=timezone.localdate())
    audit(
        Action.UPDATE,
        request=request,
        actor=by,
        obj=prescription,
        patient_id=str(prescription.patient_id),
        detail=access.audit_detail(prescription="cancelled", number=prescription.number),
    )
    return prescription


def do_renew_prescription(
    prescription: Prescription,
    by: User,
    request: HttpRequest | None = None,
    *,
    override_reason: str = "",
    acknowledged: str | None = None,
) -> Prescription:
    """Sign the same items again (checked against today's data); the old one is completed."""
    access = check_patient_access(by, prescription.patient_id)
    if access is None:
        raise RecordError(_("Only members of the care team can prescribe."))
    with transaction.atomic():
        old = Prescription.objects.select_for_update().get(pk=prescription.pk)
        if old.status != Prescription.Status.ACTIVE:
            raise RecordError(_("Only a valid or expired prescription can be renewed."))
        items = [
            {"medication": item.medication, **{f: getattr(item, f) for f in ITEM_FIELDS}}
            for item in old.items.select_related("medication").order_by("pk")
        ]
        valid_days = 90
        if old.signed_at and old.valid_until:
            valid_days = (old.valid_until - timezone.localdate(old.signed_at)).days or 90
        new = _sign(
            access,
            by,
            items,
            override_reason=override_reason,
            acknowledged=acknowledged,
            valid_days=valid_days,
            request=request,
            renewed_from=old,
        )
        old.status = Prescription.Status.COMPLETED
        old.save(update_fields=["status"])
        MedicationStatement.objects.filter(
            prescription=old, status=MedicationStatement.Status.ACTIVE
        ).update(status=MedicationStatement.Status.COMPLETED, ended_on=timezone.localdate())
        audit(
            Action.UPDATE,
            request=request,
            actor=by,
            obj=old,
            patient_id=str(old.patient_id),
            detail=access.audit_detail(prescription="renewed", renewal=new.pk),
        )
    return new
