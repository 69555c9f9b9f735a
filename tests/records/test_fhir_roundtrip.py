"""Every model of the record survives model → FHIR R4 JSON (validated) → model unchanged;
ids and references are the rows' opaque UUIDs, resolved back by from_fhir."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import pytest
from django.db import models
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.records import fhir
from apps.records.models import (
    AllergyIntolerance,
    CareTeam,
    ClinicalNote,
    Concept,
    Condition,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Observation,
    ObservationNote,
    Patient,
    Practitioner,
    PractitionerRole,
    Prescription,
)
from apps.records.services.care_team import default_team, do_add_member, do_remove_member

WHEN = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)


def roundtrip(obj: models.Model) -> tuple[dict[str, Any], Any]:
    """to_fhir, validate with fhir.resources (R4B), through JSON text, then from_fhir."""
    data = fhir.to_fhir(obj)
    fhir.validate(data)
    data = json.loads(json.dumps(data))
    return data, fhir.from_fhir(data)


def assert_same(original: models.Model, back: Any, exclude: Iterable[str] = ()) -> None:
    for field in original._meta.concrete_fields:
        if field.attname in exclude:
            continue
        expected = getattr(original, field.attname)
        got = back[field.attname] if isinstance(back, dict) else getattr(back, field.attname)
        assert got == expected, (
            f"{type(original).__name__}.{field.attname}: {got!r} != {expected!r}"
        )


@pytest.fixture
def problem(concept: Callable[..., Concept]) -> Concept:
    return concept("I10", "http://hl7.org/fhir/sid/icd-10", display="Essential hypertension")


@pytest.fixture
def encounter(record: Patient, clinician: User, practitioner: Practitioner) -> Encounter:
    return Encounter.objects.create(
        patient=record,
        status="finished",
        kind="AMB",
        reason="Contrôle tension",
        practitioner=clinician,
        started_at=WHEN,
        ended_at=WHEN + dt.timedelta(minutes=30),
        recorded_by=clinician,
        recorded_at=WHEN,
    )


@pytest.fixture
def prescription(record: Patient, clinician: User, encounter: Encounter) -> Prescription:
    return Prescription.objects.create(
        patient=record,
        prescriber=clinician,
        status="active",
        number="RX-2024-0001",
        verification_token="tok-1",
        signed_at=WHEN,
        valid_until=dt.date(2024, 8, 6),
        encounter=encounter,
        recorded_by=clinician,
    )


def test_organization_roundtrip(organization: Organization) -> None:
    organization.address = "Rue du Bugnon 46\n1011 Lausanne"
    organization.phone = "+41 21 314 11 11"
    organization.email = "info@hopital.test"
    organization.save()

    data, back = roundtrip(organization)

    assert data["id"] == str(organization.fhir_id)
    assert data["meta"] == {
        "versionId": "2",  # created, then saved once
        "lastUpdated": organization.updated_at.isoformat(),
    }
    assert data["identifier"] == [{"system": "urn:oid:2.51.1.3", "value": "7601000000099"}]
    assert isinstance(back, Organization)
    assert_same(organization, back)


def test_patient_roundtrip(record: Patient) -> None:
    Patient.objects.filter(pk=record.pk).update(
        given_names="Anne Marie",
        insurance_card_number="80756012340000000001",
        insurer_name="Assura",
        insurer_gln="7601003000016",
        phone="+41 79 123 45 67",
        email="anne@example.test",
        address_line="Chemin des Roses 3",
        postal_code="1004",
        city="Lausanne",
        preferred_language="de",
        contact_name="Paul Test",
        contact_relationship="époux",
        contact_phone="+41 79 765 43 21",
        active=False,
    )
    record.refresh_from_db()

    data, back = roundtrip(record)

    systems = {i["system"]: i.get("value") for i in data["identifier"]}
    assert systems["urn:oid:2.16.756.5.32"] == "756.1234.5678.97"
    assert systems["urn:oid:2.16.756.5.30.1.123.100.1.1.1"] == "80756012340000000001"
    assert record.organization is not None
    assert data["managingOrganization"] == {
        "reference": f"Organization/{record.organization.fhir_id}"
    }
    assert isinstance(back, Patient)
    assert_same(record, back, exclude={"user_id", "created_at"})


def test_minimal_patient_roundtrip(make_patient: Callable[..., Patient]) -> None:
    bare = make_patient(organization=None, sex="unknown")

    _data, back = roundtrip(bare)

    assert_same(bare, back, exclude={"user_id", "created_at"})


@pytest.mark.parametrize("system", ["gln", "rpps", "other"])
def test_practitioner_roundtrip(practitioner: Practitioner, system: str) -> None:
    practitioner.registration_system = system
    practitioner.save()

    data, back = roundtrip(practitioner)

    assert data["identifier"][0]["system"] == fhir.REGISTRATION_SYSTEMS[system]
    assert_same(practitioner, back)


def test_practitioner_role_roundtrip(
    practitioner: Practitioner, organization: Organization
) -> None:
    role = PractitionerRole.objects.create(
        practitioner=practitioner,
        organization=organization,
        code=Role.PHYSICIAN,
        specialty_code="394579002",
        specialty_display="Cardiology",
        active=False,
        period_start=dt.date(2020, 1, 1),
        period_end=dt.date(2023, 12, 31),
    )

    _data, back = roundtrip(role)

    assert_same(role, back)


def test_care_team_roundtrip(
    record: Patient, clinician: User, practitioner: Practitioner, make_user: Callable[..., User]
) -> None:
    team = default_team(record)
    nurse = make_user(Role.NURSE)
    do_remove_member(do_add_member(team, nurse))
    team.members.filter(user=clinician).update(is_lead=True)

    data, back = roundtrip(team)

    assert {"reference": f"Practitioner/{practitioner.fhir_id}"}.items() <= data["participant"][0][
        "member"
    ].items()
    assert_same(team, back)
    members = {m["id"]: m for m in back["members"]}
    assert len(members) == 2
    for member in team.members.all():
        assert_same(member, members[member.pk], exclude={"care_team_id"})


def test_encounter_roundtrip(encounter: Encounter) -> None:
    data, back = roundtrip(encounter)

    assert data["class"]["code"] == "AMB"
    assert_same(encounter, back)


def test_sensitive_condition_roundtrip(
    record: Patient, problem: Concept, clinician: User, encounter: Encounter
) -> None:
    condition = Condition.objects.create(
        patient=record,
        code=problem,
        sensitivity="mental_health",
        clinical_status="remission",
        verification_status="provisional",
        onset_date=dt.date(2019, 2, 3),
        abatement_date=dt.date(2023, 4, 5),
        note="Suivi annuel",
        encounter=encounter,
        recorded_by=clinician,
        recorded_at=WHEN,
    )

    data, back = roundtrip(condition)

    assert {"system": fhir.V3_ACT, "code": "PSY"} in data["meta"]["security"]
    assert data["meta"]["versionId"] == "1"
    assert data["encounter"] == {"reference": f"Encounter/{encounter.fhir_id}"}
    assert data["subject"] == {"reference": f"Patient/{record.fhir_id}"}
    assert_same(condition, back)


def test_allergy_roundtrip(record: Patient, concept: Callable[..., Concept]) -> None:
    penicillin = concept("764146007", "http://snomed.info/sct", display="Penicillin")
    allergy = AllergyIntolerance.objects.create(
        patient=record,
        substance=penicillin,
        category="medication",
        criticality="high",
        reaction="Urticaire",
        onset_date=dt.date(2001, 1, 1),
        recorded_at=WHEN,
    )

    _data, back = roundtrip(allergy)

    assert_same(allergy, back)


def test_medication_statement_roundtrip(
    record: Patient, medication: Callable[..., Medication], prescription: Prescription
) -> None:
    statement = MedicationStatement.objects.create(
        patient=record,
        medication=medication(),
        dosage="1 cp 3×/j",
        status="on-hold",
        started_on=dt.date(2024, 5, 6),
        ended_on=dt.date(2024, 5, 13),
        prescription=prescription,
        sensitivity="addiction",
        recorded_by=record.user,  # reported by the patient, who has no Practitioner
    )

    data, back = roundtrip(statement)

    assert data["informationSource"] == {
        "identifier": {"system": fhir.SYS_USER, "value": str(record.user_id)},
        "display": record.user.get_full_name(),  # type: ignore[union-attr]
    }
    assert_same(statement, back)


@pytest.mark.parametrize("route", list(fhir.ROUTE_SNOMED))
def test_medication_request_roundtrip(
    prescription: Prescription, medication: Callable[..., Medication], route: str
) -> None:
    request = MedicationRequest.objects.create(
        patient=prescription.patient,
        prescription=prescription,
        medication=medication("Ventolin 100 µg", "R03AC02"),
        dose="2 bouffées",
        route=route,
        frequency=4,
        as_needed=True,
        duration_days=30,
        quantity=2,
        instructions="En cas de gêne respiratoire",
        recorded_by=prescription.prescriber,
        recorded_at=WHEN,
    )

    data, back = roundtrip(request)

    assert data["groupIdentifier"] == {"system": fhir.SYS_PRESCRIPTION, "value": "RX-2024-0001"}
    assert data["medicationCodeableConcept"]["coding"][0]["code"] == "R03AC02"
    dosage = data["dosageInstruction"][0]
    assert dosage["route"]["coding"][0]["code"] == fhir.ROUTE_SNOMED[route][0]
    assert_same(request, back)


def test_observation_roundtrip(
    record: Patient,
    make_observation: Callable[..., Observation],
    clinician: User,
    problem: Concept,
    encounter: Encounter,
) -> None:
    report = DiagnosticReport.objects.create(
        patient=record, code=problem, category="LAB", issued_at=WHEN
    )
    observation = make_observation(
        record,
        "172.5",
        effective_at=WHEN,
        source="device",
        device_id="hr-0042",
        report=report,
        encounter=encounter,
        recorded_by=clinician,
    )
    notes = [
        ObservationNote.objects.create(observation=observation, author=clinician, text=text)
        for text in ("Après effort", "À recontrôler")
    ]

    data, back = roundtrip(observation)

    assert data["valueQuantity"] == {
        "value": 172.5,
        "unit": "/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    assert data["interpretation"][0]["coding"][0]["code"] == "HH"
    assert data["referenceRange"][0]["low"]["value"] == 50
    assert_same(observation, back)
    assert len(back["notes"]) == 2
    for note, parsed in zip(notes, back["notes"], strict=True):
        assert_same(note, parsed, exclude={"observation_id"})


def test_diagnostic_report_roundtrip(
    record: Patient,
    problem: Concept,
    encounter: Encounter,
    make_observation: Callable[..., Observation],
) -> None:
    document = _document(record)
    report = DiagnosticReport.objects.create(
        patient=record,
        code=problem,
        category="RAD",
        status="amended",
        issued_at=WHEN,
        performer="Institut de radiologie",
        conclusion="Pas d'anomalie.",
        document=document,
        encounter=encounter,
        recorded_at=WHEN,
    )
    result = make_observation(record, report=report)

    data, back = roundtrip(report)

    assert data["result"] == [{"reference": f"Observation/{result.fhir_id}"}]
    assert data["extension"][-1]["valueReference"] == {
        "reference": f"DocumentReference/{document.fhir_id}"
    }
    assert_same(report, back)


def _document(patient: Patient, **fields: Any) -> DocumentReference:
    fields.setdefault("category", "letter")
    return DocumentReference.objects.create(
        patient=patient,
        title="Lettre de sortie",
        content_type="application/pdf",
        size=12345,
        sha256="ab" * 32,
        filename="sortie.pdf",
        storage_name=f"stored-{DocumentReference.objects.count()}",
        key_id="k1",
        recorded_at=WHEN,
        **fields,
    )


@pytest.mark.parametrize("category", list(fhir.DOCUMENT_LOINC))
def test_document_roundtrip(
    record: Patient, clinician: User, encounter: Encounter, category: str
) -> None:
    document = _document(record, category=category, recorded_by=clinician, encounter=encounter)

    data, back = roundtrip(document)

    assert data["type"]["coding"][0]["code"] == fhir.DOCUMENT_LOINC[category][0]
    attachment = data["content"][0]["attachment"]
    assert attachment["size"] == 12345
    assert attachment["url"].endswith(reverse("records:document_download", args=[document.pk]))
    assert {"url": fhir.EXT + "sha256", "valueString": "ab" * 32} in attachment["extension"]
    assert isinstance(back, DocumentReference)
    assert_same(document, back, exclude={"storage_name", "thumbnail_name", "key_id"})


@pytest.mark.parametrize("kind", list(fhir.NOTE_LOINC))
def test_clinical_note_and_amendment_roundtrip(
    record: Patient, clinician: User, encounter: Encounter, kind: str
) -> None:
    first = ClinicalNote.objects.create(
        patient=record,
        kind=kind,
        title="Consultation",
        text="Patiente vue ce jour.\nTA 150/95 — à revoir.",
        status="amended",
        signed_at=WHEN,
        signature="0f" * 32,
        recorded_by=clinician,
        encounter=encounter,
        sensitivity="sexual_health",
    )
    amendment = ClinicalNote.objects.create(
        patient=record,
        kind=kind,
        title="Consultation (corrigée)",
        text="TA 140/90.",
        signed_at=timezone.now(),
        signature="1e" * 32,
        amends=first,
        amendment_reason="Erreur de saisie",
        recorded_by=clinician,
    )

    first_data, first_back = roundtrip(first)
    data, back = roundtrip(amendment)

    assert first_data["id"] == str(first.fhir_id)
    assert first_data["type"]["coding"][0]["code"] == fhir.NOTE_LOINC[kind][0]
    assert data["relatesTo"] == [
        {"code": "replaces", "target": {"reference": f"DocumentReference/{first.fhir_id}"}}
    ]
    assert isinstance(first_back, ClinicalNote)
    assert_same(first, first_back)
    assert_same(amendment, back)


def test_validate_names_the_faulty_element(record: Patient) -> None:
    data = fhir.to_fhir(record)
    data["birthDate"] = "06/05/1960"

    with pytest.raises(fhir.FhirError, match=rf"Patient/{record.fhir_id} .*birthDate"):
        fhir.validate(data)


def test_unknown_code_is_a_clear_error(record: Patient, problem: Concept) -> None:
    data = fhir.to_fhir(Condition.objects.create(patient=record, code=problem))
    data["code"]["coding"][0]["code"] = "Z99.99"

    with pytest.raises(fhir.FhirError, match="Unknown code"):
        fhir.from_fhir(data)


def test_observation_without_device_has_no_device_element(
    record: Patient, make_observation: Callable[..., Observation]
) -> None:
    data, back = roundtrip(make_observation(record, Decimal("72")))

    assert "device" not in data
    assert back["device_id"] == "" and back["source"] == "manual"


# ---------------------------------------------------------------------------------------------
# Ids, versions and references


def test_resource_models_name_every_published_model() -> None:
    found = {
        model
        for models_ in fhir.RESOURCE_MODELS.values()
        for model in (models_ if isinstance(models_, tuple) else (models_,))
    }

    assert fhir.RESOURCE_MODELS["DocumentReference"] == (DocumentReference, ClinicalNote)
    assert found == {
        Organization,
        Patient,
        Practitioner,
        PractitionerRole,
        CareTeam,
        Encounter,
        Condition,
        AllergyIntolerance,
        MedicationStatement,
        MedicationRequest,
        Observation,
        DiagnosticReport,
        DocumentReference,
        ClinicalNote,
    }


def test_without_id_it_is_a_new_row(record: Patient, problem: Concept) -> None:
    condition = Condition.objects.create(patient=record, code=problem)
    data = fhir.to_fhir(condition)
    del data["id"], data["meta"]

    back = fhir.from_fhir(data)
    assert isinstance(back, Condition)
    back.save()

    assert back.pk != condition.pk and back.fhir_id != condition.fhir_id
    assert back.version == 1
    assert Condition.objects.filter(patient=record).count() == 2


def test_update_bumps_the_version_and_keeps_what_fhir_does_not_carry(record: Patient) -> None:
    # given a client that sends back the resource with a change and a made-up meta
    data = json.loads(json.dumps(fhir.to_fhir(record)))
    data["name"][0]["family"] = "Nouveau"
    data["meta"] = {"versionId": "99", "lastUpdated": "2000-01-01T00:00:00Z"}

    # when
    back = fhir.from_fhir(data)
    assert isinstance(back, Patient)
    back.full_clean()
    back.save()

    # then the same row is updated, with the server's next version
    record_after = Patient.objects.get(pk=record.pk)
    assert record_after.family_name == "Nouveau"
    assert record_after.fhir_id == record.fhir_id
    assert record_after.version == record.version + 1
    assert record_after.updated_at > record.updated_at
    assert record_after.user_id == record.user_id and record_after.user_id is not None
    assert record_after.created_at == record.created_at
    assert Patient.objects.count() == 1


def test_an_id_we_do_not_hold_gives_a_new_row_with_that_id(record: Patient) -> None:
    data = fhir.to_fhir(record)
    data["id"] = wanted = str(uuid.uuid4())

    back = fhir.from_fhir(data)

    assert isinstance(back, Patient)
    assert back.pk is None and str(back.fhir_id) == wanted and back._state.adding


@pytest.mark.parametrize("bad_id", [str(1), "note-1", "not-a-uuid"])
def test_an_id_that_is_not_ours_is_a_clear_error(record: Patient, bad_id: str) -> None:
    data = fhir.to_fhir(record)
    data["id"] = bad_id

    with pytest.raises(fhir.FhirError, match="is not one of our ids"):
        fhir.from_fhir(data)


@pytest.mark.parametrize(
    ("element", "reference", "message"),
    [
        ("subject", "Patient/{record_pk}", "Malformed reference"),
        ("subject", "Patient/{unknown}", "Unknown reference"),
        ("subject", "Encounter/{record}", "should point to a Patient"),
        ("subject", "#contained", "Malformed reference"),
        ("encounter", "Encounter/{unknown}", "Unknown reference"),
        ("encounter", "Encounter/{other_encounter}", "Unknown reference"),
    ],
)
def test_bad_references_are_clear_errors(
    record: Patient,
    record2: Patient,
    problem: Concept,
    encounter: Encounter,
    element: str,
    reference: str,
    message: str,
) -> None:
    # given a reference to someone else's encounter among the bad ones
    other = Encounter.objects.create(patient=record2, status="finished", started_at=WHEN)
    data = fhir.to_fhir(Condition.objects.create(patient=record, code=problem))
    data[element] = {
        "reference": reference.format(
            record_pk=record.pk,
            record=record.fhir_id,
            unknown=uuid.uuid4(),
            other_encounter=other.fhir_id,
        )
    }

    with pytest.raises(fhir.FhirError, match=message):
        fhir.from_fhir(data)


def test_a_reference_to_the_patients_own_encounter_resolves(
    record: Patient, problem: Concept, encounter: Encounter
) -> None:
    data = fhir.to_fhir(Condition.objects.create(patient=record, code=problem))
    data["encounter"] = {"reference": f"https://elsewhere.test/fhir/Encounter/{encounter.fhir_id}"}

    back = fhir.from_fhir(data)

    assert isinstance(back, Condition) and back.encounter_id == encounter.pk


def test_resolve_reference(record: Patient, clinician: User, encounter: Encounter) -> None:
    note = ClinicalNote.objects.create(
        patient=record, title="N", text="t", signed_at=WHEN, signature="0" * 64
    )
    document = _document(record)
    types = ("DocumentReference",)

    assert fhir.resolve_reference(f"Patient/{record.fhir_id}", ("Patient",)) == record
    assert fhir.resolve_reference(f"DocumentReference/{note.fhir_id}", types) == note
    assert fhir.resolve_reference(f"DocumentReference/{document.fhir_id}", types) == document
    versioned = f"{fhir.CANONICAL}/fhir/Encounter/{encounter.fhir_id}/_history/3"
    assert fhir.resolve_reference(versioned, ("Patient", "Encounter")) == encounter
    with pytest.raises(fhir.FhirError, match="should point to a Patient"):
        fhir.resolve_reference(f"Encounter/{encounter.fhir_id}", ("Patient",))
    with pytest.raises(fhir.FhirError, match="Malformed reference"):
        fhir.resolve_reference(f"Patient/{record.pk}", ("Patient",))
    with pytest.raises(fhir.FhirError, match="Unknown reference"):
        fhir.resolve_reference(f"Patient/{uuid.uuid4()}", ("Patient",))


def test_a_stored_note_cannot_become_a_document(record: Patient) -> None:
    note = ClinicalNote.objects.create(
        patient=record, title="N", text="t", signed_at=WHEN, signature="0" * 64
    )
    data = fhir.to_fhir(note)
    data["category"][0]["coding"][0]["code"] = "letter"

    with pytest.raises(fhir.FhirError, match="is a clinical note"):
        fhir.from_fhir(data)
