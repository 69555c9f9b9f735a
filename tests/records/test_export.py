"""The patient's "download my data": the FHIR Bundle, the PDF summary and their pages."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pypdf import PdfReader

from apps.accounts.models import Role, User
from apps.audit.models import Action, AuditEvent
from apps.records import fhir
from apps.records.access import get_patient_for_user
from apps.records.models import (
    AllergyIntolerance,
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
    Prescription,
)
from apps.records.services.care_team import default_team, do_add_member
from apps.records.services.export import export_bundle, export_summary_pdf
from tests.conftest import signed_in_client, verified_client

EXPORT_URLS = ["records:export", "records:export_bundle", "records:export_pdf"]


@pytest.fixture
def fill(
    concept: Callable[..., Concept],
    medication: Callable[..., Medication],
    make_observation: Callable[..., Observation],
    clinician: User,
) -> Callable[..., dict[str, Any]]:
    """Put one of everything in a record, plus sensitive items; return them by name."""
    counter = {"n": 0}

    def make(patient: Patient, tag: str = "") -> dict[str, Any]:
        counter["n"] += 1
        n = counter["n"]
        icd = "http://hl7.org/fhir/sid/icd-10"
        hypertension = concept(f"I1{n}", icd, display=f"Hypertension{tag}")
        depression = concept(f"F3{n}", icd, display=f"Depression{tag}")
        items: dict[str, Any] = {}
        items["encounter"] = Encounter.objects.create(
            patient=patient, status="finished", practitioner=clinician, started_at=timezone.now()
        )
        items["condition"] = Condition.objects.create(
            patient=patient,
            code=hypertension,
            recorded_by=clinician,
            onset_date=dt.date(2020, 1, 1),
        )
        items["sensitive_condition"] = Condition.objects.create(
            patient=patient, code=depression, sensitivity="mental_health", recorded_by=clinician
        )
        items["allergy"] = AllergyIntolerance.objects.create(
            patient=patient,
            substance=concept(f"ALG{n}", display=f"Pollen{tag}"),
            category="environment",
        )
        drug = medication(f"Lisinopril{tag} 10 mg", "C09AA03")
        items["statement"] = MedicationStatement.objects.create(
            patient=patient, medication=drug, dosage="1/j"
        )
        for status in ("active", "draft"):
            prescription = Prescription.objects.create(
                patient=patient,
                prescriber=clinician,
                status=status,
                number=f"RX{n}-{status}",
                verification_token=f"tok{n}-{status}",
                signed_at=timezone.now() if status == "active" else None,
            )
            items[f"{status}_request"] = MedicationRequest.objects.create(
                patient=patient,
                prescription=prescription,
                medication=drug,
                dose="10 mg",
                frequency=1,
                duration_days=30,
                quantity=1,
            )
        items["observation"] = make_observation(patient, 130)
        ObservationNote.objects.create(
            observation=items["observation"], author=clinician, text=f"Annotation{tag}"
        )
        items["sensitive_observation"] = make_observation(patient, 80, sensitivity="sexual_health")
        items["report"] = DiagnosticReport.objects.create(
            patient=patient, code=hypertension, category="LAB", issued_at=timezone.now()
        )
        items["document"] = DocumentReference.objects.create(
            patient=patient,
            title=f"Letter{tag}",
            category="letter",
            content_type="application/pdf",
            size=10,
            sha256="0" * 64,
            filename="letter.pdf",
            storage_name=f"blob-{n}",
            key_id="k1",
        )
        items["note"] = ClinicalNote.objects.create(
            patient=patient,
            title=f"Progress{tag}",
            text=f"Secret text{tag}",
            signed_at=timezone.now(),
            signature="f" * 64,
            recorded_by=clinician,
        )
        return items

    return make


def resource_keys(data: dict[str, Any]) -> set[str]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in data["entry"]}


def key(item: Any) -> str:
    resource = fhir.to_fhir(item)
    return f"{resource['resourceType']}/{resource['id']}"


def own_access(user: User, patient: Patient) -> Any:
    return get_patient_for_user(user, patient.pk, action=None)


def test_patient_bundle_is_valid_and_holds_only_their_record(
    record: Patient, record2: Patient, patient: User, fill: Callable[..., dict[str, Any]]
) -> None:
    # given
    mine = fill(record)
    theirs = fill(record2, tag="Zzyzx")
    Patient.objects.filter(pk=record2.pk).update(family_name="Quuxley")

    # when
    data = json.loads(export_bundle(own_access(patient, record)))

    # then
    fhir.validate(data)
    assert data["type"] == "collection"
    keys = resource_keys(data)
    assert f"Patient/{record.fhir_id}" in keys and f"Patient/{record2.fhir_id}" not in keys
    assert {key(item) for name, item in mine.items() if name != "draft_request"} <= keys
    assert key(mine["draft_request"]) not in keys
    assert not {key(item) for item in theirs.values()} & keys
    text = json.dumps(data)
    assert "Zzyzx" not in text and "Quuxley" not in text
    for entry in data["entry"]:
        resource = entry["resource"]
        subject = resource.get("subject") or resource.get("patient")
        if subject:
            assert subject == {"reference": f"Patient/{record.fhir_id}"}
        assert entry["fullUrl"].endswith(f"/{resource['resourceType']}/{resource['id']}")


def test_bundle_names_the_practitioners_and_organisation(
    record: Patient, patient: User, practitioner: Any, fill: Callable[..., dict[str, Any]]
) -> None:
    fill(record)

    keys = resource_keys(fhir.patient_bundle(own_access(patient, record)))

    assert f"Practitioner/{practitioner.fhir_id}" in keys
    assert record.organization is not None
    assert f"Organization/{record.organization.fhir_id}" in keys
    assert any(k.startswith("CareTeam/") for k in keys)


UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def references(value: Any) -> list[str]:
    """Every literal reference anywhere inside `value`."""
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [
            r for key, item in value.items() if key != "reference" for r in references(item)
        ]
    if isinstance(value, list):
        return [r for item in value for r in references(item)]
    return []


def test_bundle_ids_and_references_are_opaque_uuids(
    record: Patient, patient: User, fill: Callable[..., dict[str, Any]]
) -> None:
    # given a record whose items point to each other
    items = fill(record)
    Condition.objects.filter(pk=items["condition"].pk).update(encounter=items["encounter"])
    Observation.objects.filter(pk=items["observation"].pk).update(report=items["report"])
    DiagnosticReport.objects.filter(pk=items["report"].pk).update(document=items["document"])
    amendment = ClinicalNote.objects.create(
        patient=record,
        title="Amended",
        text="Corrected",
        signed_at=timezone.now(),
        signature="e" * 64,
        amends=items["note"],
    )

    # when
    data = fhir.patient_bundle(own_access(patient, record))

    # then no id, reference or full URL holds a database key ("Patient/1")
    text = json.dumps(data)
    assert not re.search(r"\b[A-Z][A-Za-z]+/\d+(?![\w-])", text)
    entries = {}
    for entry in data["entry"]:
        resource = entry["resource"]
        assert re.fullmatch(UUID, resource["id"]), resource["id"]
        assert entry["fullUrl"].endswith(f"/{resource['resourceType']}/{resource['id']}")
        assert re.fullmatch(r"\d+", resource["meta"]["versionId"])
        assert dt.datetime.fromisoformat(resource["meta"]["lastUpdated"]).tzinfo is not None
        entries[f"{resource['resourceType']}/{resource['id']}"] = resource
    # each id is the row's fhir_id, and every reference resolves inside the bundle
    assert entries[key(amendment)]["relatesTo"][0]["target"] == {
        "reference": f"DocumentReference/{items['note'].fhir_id}"
    }
    found = references(data)
    assert f"Encounter/{items['encounter'].fhir_id}" in found
    assert f"DiagnosticReport/{items['report'].fhir_id}" in found
    assert f"DocumentReference/{items['document'].fhir_id}" in found
    for reference in found:
        assert re.fullmatch(rf"[A-Z][A-Za-z]+/{UUID}", reference), reference
        assert reference in entries, f"{reference} is not in the bundle"


def test_meta_follows_the_rows_version(
    record: Patient, patient: User, fill: Callable[..., dict[str, Any]]
) -> None:
    items = fill(record)
    condition = items["condition"]
    condition.note = "Updated"
    condition.save()

    data = fhir.patient_bundle(own_access(patient, record))

    resource = next(
        e["resource"] for e in data["entry"] if e["resource"]["id"] == str(condition.fhir_id)
    )
    assert resource["meta"]["versionId"] == "2"
    assert resource["meta"]["lastUpdated"] == condition.updated_at.isoformat()
    assert resource["meta"]["security"] == [{"system": fhir.V3_CONFIDENTIALITY, "code": "N"}]


def test_patient_sees_their_sensitive_items(
    record: Patient, patient: User, fill: Callable[..., dict[str, Any]]
) -> None:
    items = fill(record)

    keys = resource_keys(fhir.patient_bundle(own_access(patient, record)))

    assert key(items["sensitive_condition"]) in keys
    assert key(items["sensitive_observation"]) in keys


def test_nurse_bundle_hides_sensitive_categories(
    record: Patient, make_user: Callable[..., User], fill: Callable[..., dict[str, Any]]
) -> None:
    # given a nurse on the care team (nurses are not allowed the sensitive categories)
    items = fill(record)
    nurse = make_user(Role.NURSE)
    do_add_member(default_team(record), nurse)

    # when
    data = fhir.patient_bundle(get_patient_for_user(nurse, record.pk))

    # then
    fhir.validate(data)
    keys = resource_keys(data)
    assert key(items["condition"]) in keys
    assert key(items["sensitive_condition"]) not in keys
    assert key(items["sensitive_observation"]) not in keys
    for entry in data["entry"]:
        codes = {c["code"] for c in entry["resource"].get("meta", {}).get("security", [])}
        assert not codes & {"PSY", "SEX", "ETH"}


def test_bundle_query_count_does_not_grow_with_the_record(
    record: Patient, patient: User, fill: Callable[..., dict[str, Any]]
) -> None:
    fill(record)
    access = own_access(patient, record)
    with CaptureQueriesContext(connection) as small:
        fhir.patient_bundle(access)
    fill(record)
    fill(record)

    with CaptureQueriesContext(connection) as large:
        data = fhir.patient_bundle(access)

    assert len(data["entry"]) > 30
    assert len(large.captured_queries) == len(small.captured_queries)


def test_summary_pdf_reads_back(
    record: Patient, patient: User, fill: Callable[..., dict[str, Any]]
) -> None:
    fill(record)

    data = export_summary_pdf(own_access(patient, record), language="en")

    text = PdfReader(io.BytesIO(data)).pages[0].extract_text()
    assert record.full_name in text
    assert record.birth_date.isoformat() in text
    assert "Hypertension" in text
    assert record.organization is not None and record.organization.name in text
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None and event.action == Action.EXPORT
    assert event.patient_id == str(record.pk) and event.detail["what"] == "summary-pdf"


@pytest.mark.parametrize("name", EXPORT_URLS)
@pytest.mark.parametrize("who", ["outsider", "clinician", "billing_user", "admin_user"])
def test_staff_get_404_and_the_denial_is_audited(
    record: Patient, name: str, who: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    client = verified_client(user)

    response = client.get(reverse(name))

    assert response.status_code == 404
    assert AuditEvent.objects.filter(actor_id=user.pk, action=Action.DENIED).exists()
    assert not AuditEvent.objects.filter(action=Action.EXPORT).exists()


@pytest.mark.parametrize("name", EXPORT_URLS)
def test_patient_without_record_gets_404_and_the_denial_is_audited(
    record: Patient, patient2: User, name: str
) -> None:
    response = signed_in_client(patient2).get(reverse(name))

    assert response.status_code == 404
    assert AuditEvent.objects.filter(actor_id=patient2.pk, action=Action.DENIED).exists()


def test_anonymous_is_sent_to_sign_in(record: Patient) -> None:
    response = Client().get(reverse("records:export_bundle"))

    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action=Action.EXPORT).exists()


def test_export_page(record: Patient, patient: User) -> None:
    response = signed_in_client(patient).get(reverse("records:export"))

    assert response.status_code == 200
    assert reverse("records:export_bundle").encode() in response.content
    assert reverse("records:export_pdf").encode() in response.content


def test_patient_downloads_their_bundle(
    record: Patient, record2: Patient, patient: User, fill: Callable[..., dict[str, Any]]
) -> None:
    fill(record)
    fill(record2, tag="Zzyzx")

    response = signed_in_client(patient).get(reverse("records:export_bundle"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/fhir+json"
    assert response["Content-Disposition"].startswith('attachment; filename="my-record-')
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    data = json.loads(response.content)
    fhir.validate(data)
    assert b"Zzyzx" not in response.content
    event = AuditEvent.objects.filter(action=Action.EXPORT).get()
    assert event.actor_id == patient.pk and event.patient_id == str(record.pk)
    assert not AuditEvent.objects.filter(action=Action.DENIED).exists()


def test_patient_downloads_their_summary(record: Patient, patient: User) -> None:
    response = signed_in_client(patient).get(reverse("records:export_pdf"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].endswith('.pdf"')
    assert "no-store" in response["Cache-Control"]
    assert record.full_name in PdfReader(io.BytesIO(response.content)).pages[0].extract_text()
    event = AuditEvent.objects.filter(action=Action.EXPORT).get()
    assert event.actor_id == patient.pk and event.patient_id == str(record.pk)


def test_second_patient_downloads_only_their_own(
    record: Patient, record2: Patient, patient2: User, fill: Callable[..., dict[str, Any]]
) -> None:
    fill(record, tag="Mineonly")

    response = signed_in_client(patient2).get(reverse("records:export_bundle"))

    assert response.status_code == 200
    assert b"Mineonly" not in response.content
    keys = resource_keys(json.loads(response.content))
    assert f"Patient/{record2.fhir_id}" in keys and f"Patient/{record.fhir_id}" not in keys
