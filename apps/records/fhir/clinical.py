"""FHIR mapping of the clinical items: Encounter, Condition, AllergyIntolerance,
MedicationStatement, MedicationRequest, Observation and DiagnosticReport; and the patients'
connected devices (Device, read-only)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from apps.accounts.models import User

from ..models import (
    AllergyIntolerance,
    CodeSystem,
    Condition,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    MedicationRequest,
    MedicationStatement,
    Observation,
)
from .codes import (
    DEVICE_BATTERY,
    DEVICE_SNOMED,
    ENCOUNTER_CLASS_DISPLAY,
    INTERPRETATION_DISPLAY,
    REPORT_CATEGORY_DISPLAY,
    ROUTE_SNOMED,
    SYS_DEVICE,
    SYS_DEVICE_KIND,
    TERMINOLOGY,
    UCUM,
    V3_ACT,
    V3_INTERPRETATION,
)
from .helpers import (
    FhirError,
    _cc,
    _clean,
    _code,
    _coding,
    _concept,
    _concept_id,
    _date,
    _datetime,
    _decimal,
    _element_pk,
    _ext,
    _ext_value,
    _iso,
    _item,
    _item_fields,
    _medication,
    _medication_id,
    _need,
    _number,
    _period,
    _prescription_id,
    _prescription_identifier,
    _recorded_ext,
    _recorded_from_ext,
    _ref,
    _ref_id,
    _resource,
    _user_id,
    _user_ref,
)

if TYPE_CHECKING:
    from apps.devices.models import Device


@dataclass(frozen=True)
class EncounterExtras:
    """What an app built on the record knows of an Encounter beyond its row.

    Teleconsult (a video consultation is an Encounter): the clinicians who attended, the
    appointment it fulfils and the call's length. The records app does not import those apps:
    they register a provider (`register_encounter_extras`) from their `ready()`.
    """

    # Accounts of the people who also took part, in order (the practitioner is left out).
    participants: tuple[int, ...] = ()
    # The fhir_id of the Appointment the encounter fulfils.
    appointment: str = ""
    # The length in whole minutes, once it ended.
    minutes: int | None = None


# Given encounter pks, the extras of those it knows about (one or two queries, not per row).
EncounterExtrasProvider = Callable[[Sequence[int]], dict[int, EncounterExtras]]
_EXTRAS_PROVIDERS: list[EncounterExtrasProvider] = []
# Where `load_encounter_extras` leaves them on an instance, for lists mapped one by one.
_EXTRAS_ATTRIBUTE = "_fhir_extras"
SECONDARY_PERFORMER = (TERMINOLOGY + "v3-ParticipationType", "SPRF", "secondary performer")


def register_encounter_extras(provider: EncounterExtrasProvider) -> None:
    if provider not in _EXTRAS_PROVIDERS:
        _EXTRAS_PROVIDERS.append(provider)


def encounter_extras(pks: Sequence[int]) -> dict[int, EncounterExtras]:
    """The registered providers' extras of these encounters (absent: none known)."""
    found: dict[int, EncounterExtras] = {}
    if not pks:
        return found
    for provider in _EXTRAS_PROVIDERS:
        for pk, extra in provider(pks).items():
            before = found.get(pk)
            if before is not None:
                extra = EncounterExtras(
                    before.participants + extra.participants,
                    before.appointment or extra.appointment,
                    before.minutes if before.minutes is not None else extra.minutes,
                )
            found[pk] = extra
    return found


def load_encounter_extras(encounters: Iterable[Encounter]) -> None:
    """Fetch the extras of a page of encounters at once, before mapping them one by one."""
    rows = list(encounters)
    extras = encounter_extras([e.pk for e in rows])
    for e in rows:
        setattr(e, _EXTRAS_ATTRIBUTE, extras.get(e.pk, EncounterExtras()))


def extra_participants(extras: EncounterExtras, practitioner_id: int | None) -> list[int]:
    """The accounts to list as secondary performers: each once, never the primary one."""
    seen = {practitioner_id}
    people = []
    for pk in extras.participants:
        if pk not in seen:
            seen.add(pk)
            people.append(pk)
    return people


def minutes_duration(minutes: int | None) -> dict[str, Any] | None:
    if minutes is None:
        return None
    return {"value": minutes, "unit": "min", "system": UCUM, "code": "min"}


def _encounter_to(e: Encounter) -> dict[str, Any]:
    participant = None
    if e.practitioner_id is not None:
        participant = {
            "type": [_cc(TERMINOLOGY + "v3-ParticipationType", "PPRF", "primary performer")],
            "individual": _user_ref(e.practitioner),
        }
    extras = getattr(e, _EXTRAS_ATTRIBUTE, None)
    if extras is None:
        extras = encounter_extras([e.pk]).get(e.pk, EncounterExtras())
    others = extra_participants(extras, e.practitioner_id)
    people = User.objects.select_related("practitioner").in_bulk(others) if others else {}
    return _item(
        e,
        "Encounter",
        extension=_recorded_ext(e),
        status=e.status,
        **{"class": _coding(V3_ACT, e.kind, ENCOUNTER_CLASS_DISPLAY.get(e.kind))},
        participant=[
            participant,
            *(
                {"type": [_cc(*SECONDARY_PERFORMER)], "individual": _user_ref(people.get(pk))}
                for pk in others
            ),
        ],
        appointment=[{"reference": f"Appointment/{extras.appointment}"}]
        if extras.appointment
        else None,
        period=_period(e.started_at, e.ended_at),
        length=minutes_duration(extras.minutes),
        reasonCode=[{"text": e.reason}],
    )


def _encounter_from(data: dict[str, Any]) -> Encounter:
    period = data.get("period") or {}
    participant = (data.get("participant") or [{}])[0]
    return Encounter(
        **_item_fields(data, Encounter),
        **_recorded_from_ext(data),
        status=data.get("status", ""),
        kind=(data.get("class") or {}).get("code", Encounter.Kind.VIRTUAL),
        reason=(data.get("reasonCode") or [{}])[0].get("text", ""),
        practitioner_id=_user_id(participant.get("individual")),
        started_at=_need(_datetime(period.get("start")), "Encounter.period.start"),
        ended_at=_datetime(period.get("end")),
    )


def _condition_to(c: Condition) -> dict[str, Any]:
    return _item(
        c,
        "Condition",
        clinicalStatus=_cc(TERMINOLOGY + "condition-clinical", c.clinical_status),
        verificationStatus=_cc(TERMINOLOGY + "condition-ver-status", c.verification_status),
        category=[
            _cc(TERMINOLOGY + "condition-category", "problem-list-item", "Problem List Item")
        ],
        code=_concept(c.code),
        encounter=_ref("Encounter", c.encounter),
        onsetDateTime=_iso(c.onset_date),
        abatementDateTime=_iso(c.abatement_date),
        recordedDate=_iso(c.recorded_at),
        recorder=_user_ref(c.recorded_by),
        note=[{"text": c.note}] if c.note else [],
    )


def _condition_from(data: dict[str, Any]) -> Condition:
    fields = _item_fields(data, Condition)
    return Condition(
        **fields,
        code_id=_concept_id(data.get("code")),
        clinical_status=_code(data.get("clinicalStatus"), TERMINOLOGY + "condition-clinical"),
        verification_status=_code(
            data.get("verificationStatus"), TERMINOLOGY + "condition-ver-status"
        ),
        onset_date=_date(data.get("onsetDateTime")),
        abatement_date=_date(data.get("abatementDateTime")),
        note=(data.get("note") or [{}])[0].get("text", ""),
        encounter_id=_ref_id(data.get("encounter"), "Encounter", patient_id=fields["patient_id"]),
        recorded_at=_datetime(data.get("recordedDate")) or timezone.now(),
        recorded_by_id=_user_id(data.get("recorder")),
    )


def _allergy_to(a: AllergyIntolerance) -> dict[str, Any]:
    return _item(
        a,
        "AllergyIntolerance",
        clinicalStatus=_cc(TERMINOLOGY + "allergyintolerance-clinical", a.clinical_status),
        category=[a.category],
        criticality=a.criticality,
        code=_concept(a.substance),
        onsetDateTime=_iso(a.onset_date),
        recordedDate=_iso(a.recorded_at),
        recorder=_user_ref(a.recorded_by),
        reaction=[{"manifestation": [{"text": a.reaction}]}] if a.reaction else [],
    )


def _allergy_from(data: dict[str, Any]) -> AllergyIntolerance:
    reaction = (data.get("reaction") or [{}])[0]
    return AllergyIntolerance(
        **_item_fields(data, AllergyIntolerance),
        substance_id=_concept_id(data.get("code")),
        category=(data.get("category") or [""])[0],
        criticality=data.get("criticality", "low"),
        clinical_status=_code(
            data.get("clinicalStatus"), TERMINOLOGY + "allergyintolerance-clinical"
        ),
        reaction=(reaction.get("manifestation") or [{}])[0].get("text", ""),
        onset_date=_date(data.get("onsetDateTime")),
        recorded_at=_datetime(data.get("recordedDate")) or timezone.now(),
        recorded_by_id=_user_id(data.get("recorder")),
    )


def _statement_to(s: MedicationStatement) -> dict[str, Any]:
    based_on = None
    if s.prescription_id is not None:
        based_on = {
            "type": "MedicationRequest",
            "identifier": _prescription_identifier(s.prescription),
        }
    return _item(
        s,
        "MedicationStatement",
        basedOn=[based_on],
        status=s.status,
        medicationCodeableConcept=_medication(s.medication),
        effectivePeriod=_period(s.started_on, s.ended_on),
        dateAsserted=_iso(s.recorded_at),
        informationSource=_user_ref(s.recorded_by),
        dosage=[{"text": s.dosage}],
    )


def _statement_from(data: dict[str, Any]) -> MedicationStatement:
    period = data.get("effectivePeriod") or {}
    based_on = (data.get("basedOn") or [{}])[0]
    return MedicationStatement(
        **_item_fields(data, MedicationStatement),
        medication_id=_medication_id(data.get("medicationCodeableConcept")),
        dosage=(data.get("dosage") or [{}])[0].get("text", ""),
        status=data.get("status", "active"),
        started_on=_date(period.get("start")),
        ended_on=_date(period.get("end")),
        prescription_id=_prescription_id(based_on.get("identifier")),
        recorded_at=_datetime(data.get("dateAsserted")) or timezone.now(),
        recorded_by_id=_user_id(data.get("informationSource")),
    )


def _duration(days: int) -> dict[str, Any]:
    return {"value": days, "unit": "days", "system": UCUM, "code": "d"}


def _request_to(r: MedicationRequest) -> dict[str, Any]:
    prescription = r.prescription
    route, route_display = ROUTE_SNOMED[r.route]
    dosage = {
        "text": r.dose,
        "patientInstruction": r.instructions,
        "timing": {
            "repeat": {
                "boundsDuration": _duration(r.duration_days),
                "frequency": r.frequency,
                "period": 1,
                "periodUnit": "d",
            }
        },
        "asNeededBoolean": r.as_needed,
        "route": _cc(CodeSystem.SNOMED, route, route_display),
    }
    return _item(
        r,
        "MedicationRequest",
        groupIdentifier=_prescription_identifier(prescription),
        status=prescription.status,
        intent="order",
        medicationCodeableConcept=_medication(r.medication),
        encounter=_ref("Encounter", prescription.encounter),
        authoredOn=_iso(r.recorded_at),
        requester=_user_ref(prescription.prescriber),
        recorder=_user_ref(r.recorded_by),
        dosageInstruction=[dosage],
        dispenseRequest={
            "validityPeriod": _period(prescription.signed_at, prescription.valid_until),
            "quantity": {"value": r.quantity, "unit": "pack"},
            "expectedSupplyDuration": _duration(r.duration_days),
        },
    )


def _request_from(data: dict[str, Any]) -> MedicationRequest:
    dosage = (data.get("dosageInstruction") or [{}])[0]
    repeat = (dosage.get("timing") or {}).get("repeat") or {}
    dispense = data.get("dispenseRequest") or {}
    routes = {code: key for key, (code, _display) in ROUTE_SNOMED.items()}
    prescription = _prescription_id(data.get("groupIdentifier"))
    if prescription is None:
        raise FhirError("MedicationRequest without its prescription (groupIdentifier)")
    return MedicationRequest(
        **_item_fields(data, MedicationRequest),
        prescription_id=prescription,
        medication_id=_medication_id(data.get("medicationCodeableConcept")),
        dose=dosage.get("text", ""),
        route=routes.get(_code(dosage.get("route"), CodeSystem.SNOMED), "oral"),
        frequency=repeat.get("frequency", 1),
        as_needed=dosage.get("asNeededBoolean", False),
        duration_days=(repeat.get("boundsDuration") or {}).get("value", 1),
        quantity=(dispense.get("quantity") or {}).get("value", 1),
        instructions=dosage.get("patientInstruction", ""),
        recorded_at=_datetime(data.get("authoredOn")) or timezone.now(),
        recorded_by_id=_user_id(data.get("recorder")),
    )


def _quantity(value: Decimal | None, unit: str) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"value": _number(value), "unit": unit, "system": UCUM, "code": unit}


def _observation_to(o: Observation) -> dict[str, Any]:
    notes = [
        {
            "id": str(note.pk),
            "authorReference": _user_ref(note.author),
            "time": _iso(note.created_at),
            "text": note.text,
        }
        for note in o.notes.all()
    ]
    interpretation = None
    if o.interpretation:
        display = INTERPRETATION_DISPLAY.get(o.interpretation)
        interpretation = _cc(V3_INTERPRETATION, o.interpretation, display)
    category_system = TERMINOLOGY + "observation-category"
    return _item(
        o,
        "Observation",
        extension=[
            _ext("observation-source", "valueCode", o.source),
            _ext("report", "valueReference", _ref("DiagnosticReport", o.report)),
        ],
        status=o.status,
        category=[_cc(category_system, o.category)],
        code=_concept(o.code),
        encounter=_ref("Encounter", o.encounter),
        effectiveDateTime=_iso(o.effective_at),
        issued=_iso(o.recorded_at),
        performer=[_user_ref(o.recorded_by)],
        valueQuantity=_quantity(o.value, o.unit),
        interpretation=[interpretation],
        note=notes,
        device=device_reference(o.device_id, getattr(o, "device_fhir_id", None)),
        referenceRange=[
            {"low": _quantity(o.ref_low, o.unit), "high": _quantity(o.ref_high, o.unit)}
        ],
    )


def device_reference(device_id: str, fhir_id: Any) -> dict[str, Any] | None:
    """`Observation.device`: the device's identifier, and `Device/<fhir_id>` when it is known.

    The Device's fhir_id is not on the observation row (it stores the public device id): list
    readers annotate it as `device_fhir_id` (the FHIR API's querysets, `batch`), so a page costs
    no query per row; without it only the identifier is given.
    """
    if not device_id:
        return None
    identifier = {"system": SYS_DEVICE, "value": device_id}
    if fhir_id is None:
        return {"identifier": identifier}
    return {"reference": f"Device/{fhir_id}", "identifier": identifier}


def _observation_from(data: dict[str, Any]) -> dict[str, Any]:
    quantity = data.get("valueQuantity") or {}
    reference_range = (data.get("referenceRange") or [{}])[0]
    device = (data.get("device") or {}).get("identifier") or {}
    notes = [
        {
            "id": _element_pk(note),
            "author_id": _user_id(note.get("authorReference")),
            "text": note.get("text", ""),
            "created_at": _datetime(note.get("time")),
        }
        for note in data.get("note", [])
    ]
    fields = _item_fields(data, Observation)
    patient_id = fields["patient_id"]
    return {
        **fields,
        "code_id": _concept_id(data.get("code")),
        "category": _code((data.get("category") or [{}])[0], TERMINOLOGY + "observation-category"),
        "status": data.get("status", "final"),
        "value": _decimal(quantity.get("value")),
        "unit": quantity.get("code") or quantity.get("unit", ""),
        "ref_low": _decimal((reference_range.get("low") or {}).get("value")),
        "ref_high": _decimal((reference_range.get("high") or {}).get("value")),
        "interpretation": _code((data.get("interpretation") or [{}])[0], V3_INTERPRETATION),
        "effective_at": _datetime(data.get("effectiveDateTime")),
        "source": _ext_value(data, "observation-source") or "manual",
        "device_id": device.get("value", "") if device.get("system") == SYS_DEVICE else "",
        "report_id": _ref_id(_ext_value(data, "report"), "DiagnosticReport", patient_id=patient_id),
        "encounter_id": _ref_id(data.get("encounter"), "Encounter", patient_id=patient_id),
        "recorded_at": _datetime(data.get("issued")) or timezone.now(),
        "recorded_by_id": _user_id((data.get("performer") or [None])[0]),
        "notes": notes,
    }


def _report_to(r: DiagnosticReport) -> dict[str, Any]:
    return _item(
        r,
        "DiagnosticReport",
        extension=[
            *_recorded_ext(r),
            _ext("document", "valueReference", _ref("DocumentReference", r.document)),
        ],
        status=r.status,
        category=[
            _cc(TERMINOLOGY + "v2-0074", r.category, REPORT_CATEGORY_DISPLAY.get(r.category))
        ],
        code=_concept(r.code),
        encounter=_ref("Encounter", r.encounter),
        issued=_iso(r.issued_at),
        performer=[{"display": r.performer}],
        result=[_ref("Observation", result) for result in r.results.all()],
        conclusion=r.conclusion,
    )


def _report_from(data: dict[str, Any]) -> DiagnosticReport:
    fields = _item_fields(data, DiagnosticReport)
    patient_id = fields["patient_id"]
    return DiagnosticReport(
        **fields,
        **_recorded_from_ext(data),
        code_id=_concept_id(data.get("code")),
        category=_code((data.get("category") or [{}])[0], TERMINOLOGY + "v2-0074"),
        status=data.get("status", "final"),
        issued_at=_need(_datetime(data.get("issued")), "DiagnosticReport.issued"),
        performer=(data.get("performer") or [{}])[0].get("display", ""),
        conclusion=data.get("conclusion", ""),
        document_id=_ref_id(
            _ext_value(data, "document"),
            "DocumentReference",
            model=DocumentReference,
            patient_id=patient_id,
        ),
        encounter_id=_ref_id(data.get("encounter"), "Encounter", patient_id=patient_id),
    )


def _device_type(kind: str) -> dict[str, Any]:
    coding = []
    if kind in DEVICE_SNOMED:
        code, display = DEVICE_SNOMED[kind]
        coding.append(_coding(CodeSystem.SNOMED, code, display))
    coding.append(_coding(SYS_DEVICE_KIND, kind))
    return {"coding": coding}


def device_to_fhir(d: Device) -> dict[str, Any]:
    """A connected device as FHIR Device (read-only; its secret never leaves the server)."""
    battery = None
    if d.battery is not None:
        battery = {
            "type": {"text": DEVICE_BATTERY},
            "valueQuantity": [{"value": d.battery, "unit": "%", "system": UCUM, "code": "%"}],
        }
    return _clean(
        {
            **_resource(d, "Device"),
            "extension": [_ext("last-seen", "valueDateTime", _iso(d.last_seen_at))],
            "identifier": [{"system": SYS_DEVICE, "value": d.device_id}],
            "status": "active" if d.status == "active" else "inactive",
            "manufacturer": d.manufacturer,
            "serialNumber": d.serial,
            "deviceName": [{"name": d.model, "type": "model-name"}] if d.model else None,
            "type": _device_type(d.kind),
            "property": [battery],
            "patient": _ref("Patient", d.patient),
        }
    )
