"""FHIR create, update, conditional create/update: round trips, versions, permissions, audit."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from PIL import Image

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.interop.fhir_api.oauth import do_create_fhir_client
from apps.records.fhir import SYS_AHV, SYS_USER, to_fhir
from apps.records.models import (
    AllergyIntolerance,
    ClinicalNote,
    Concept,
    Condition,
    DocumentReference,
    Medication,
    MedicationRequest,
    Observation,
    Patient,
    Prescription,
)
from apps.records.services.documents import open_document

FHIR = "application/fhir+json"
LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    yield


@pytest.fixture
def system_api(db: None) -> Callable[..., Client]:
    """A backend system's client: a real OAuth2 client-credentials token with `scopes`."""

    def make(scopes: str = "system/*.cruds") -> Client:
        client, secret = do_create_fhir_client(f"HIS {uuid.uuid4().hex[:6]}", scopes)
        pair = f"{client.application.client_id}:{secret}".encode()
        response = Client().post(
            "/o/token/",
            {"grant_type": "client_credentials", "scope": scopes},
            HTTP_AUTHORIZATION="Basic " + base64.b64encode(pair).decode(),
        )
        assert response.status_code == 200, response.content
        token = response.json()["access_token"]
        return Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT=FHIR)

    return make


def send(client: Client, method: str, url: str, body: Any, **headers: str) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    call = getattr(client, method.lower())
    return call(url, data=data, content_type=FHIR, **headers)


def stripped(resource: dict[str, Any]) -> dict[str, Any]:
    """A stored resource as a new one: no id, no version, no last update (labels kept)."""
    copy = json.loads(json.dumps(resource))
    copy.pop("id", None)
    meta = copy.pop("meta", {})
    if meta.get("security"):
        copy["meta"] = {"security": meta["security"]}
    return copy


def observation_json(patient: Patient, value: float = 120, **extra: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{patient.fhir_id}"},
        "effectiveDateTime": "2026-03-01T08:00:00+01:00",
        "valueQuantity": {
            "value": value,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }
    resource.update(extra)
    return resource


def patient_json(ahv: str = "756.9999.8888.77", family: str = "Muster") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": SYS_AHV, "value": ahv}],
        "name": [{"family": family, "given": ["Anna"]}],
        "gender": "female",
        "birthDate": "1980-02-03",
    }


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (30, 20), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# Round trips


def _round_trip(api: Client, type_name: str, source: Any) -> dict[str, Any]:
    resource = stripped(to_fhir(source))
    response = send(api, "POST", f"/fhir/{type_name}", resource)
    assert response.status_code == 201, response.content
    new_id = response.json()["id"]
    assert new_id != str(source.fhir_id)
    assert response["Location"].endswith(f"/fhir/{type_name}/{new_id}/_history/1")
    assert response["ETag"] == 'W/"1"'
    read = api.get(f"/fhir/{type_name}/{new_id}").json()
    assert stripped(read) == resource
    return read


def test_patient_round_trips(
    system_api: Callable[..., Client], make_patient: Callable[..., Patient]
) -> None:
    source = make_patient(
        ahv_number="756.1111.2222.33",
        phone="+41 21 000 00 00",
        city="Lausanne",
        contact_name="Marc",
        contact_phone="+41 79 000 00 00",
    )
    source.ahv_number = "756.1111.2222.34"  # the copy needs its own AHV number
    _round_trip(system_api(), "Patient", source)
    assert Patient.objects.filter(ahv_number="756.1111.2222.34").count() == 1


def test_clinical_types_round_trip(
    system_api: Callable[..., Client],
    record: Patient,
    clinician: User,
    make_observation: Callable[..., Observation],
    concept: Callable[..., Concept],
) -> None:
    api = system_api()
    observation = make_observation(record, value="71.5", recorded_by=clinician)
    _round_trip(api, "Observation", observation)
    condition = Condition.objects.create(
        patient=record,
        code=concept("I10", system="http://hl7.org/fhir/sid/icd-10", category="problem"),
        clinical_status="active",
        onset_date=dt.date(2020, 1, 2),
        note="since 2020",
        recorded_by=clinician,
    )
    _round_trip(api, "Condition", condition)
    allergy = AllergyIntolerance.objects.create(
        patient=record,
        substance=concept("91936005", system="http://snomed.info/sct", category="allergen"),
        category="medication",
        criticality="high",
        reaction="urticaria",
        recorded_by=clinician,
    )
    _round_trip(api, "AllergyIntolerance", allergy)
    assert Observation.objects.filter(patient=record).count() == 2
    assert Condition.objects.filter(patient=record).count() == 2
    assert AllergyIntolerance.objects.filter(patient=record).count() == 2


def test_medication_request_is_created_as_a_draft_prescription(
    fhir_client: Callable[..., Client],
    record: Patient,
    clinician: User,
    medication: Callable[..., Medication],
) -> None:
    drug = medication()
    api = fhir_client(clinician, "user/*.cruds")
    resource = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{record.fhir_id}"},
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": drug.atc_code}],
            "text": drug.name,
        },
        "dosageInstruction": [
            {
                "text": "500 mg",
                "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
            }
        ],
    }
    response = send(api, "POST", "/fhir/MedicationRequest", resource)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft" and body["intent"] == "order"
    request = MedicationRequest.objects.get(fhir_id=body["id"])
    assert request.prescription.status == Prescription.Status.DRAFT
    assert request.prescription.prescriber == clinician and request.prescription.signed_at is None
    assert request.frequency == 3 and request.dose == "500 mg"
    # a second line joins the same draft through its groupIdentifier
    second = {**resource, "groupIdentifier": body["groupIdentifier"]}
    assert send(api, "POST", "/fhir/MedicationRequest", second).status_code == 201
    assert request.prescription.items.count() == 2
    # the patient does not see drafts: they are not prescriptions yet
    own = fhir_client(record.user, "patient/*.rs")
    assert own.get(f"/fhir/MedicationRequest/{request.fhir_id}").status_code == 404
    assert own.get("/fhir/MedicationRequest").json()["total"] == 0
    # a signed (active) prescription is never created through the API
    active = send(api, "POST", "/fhir/MedicationRequest", {**resource, "status": "active"})
    assert active.status_code == 422
    assert "draft" in active.json()["issue"][0]["diagnostics"]


def test_document_reference_stores_the_file_encrypted(
    system_api: Callable[..., Client], record: Patient, clinician: User
) -> None:
    content = png_bytes()
    resource = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{record.fhir_id}"},
        "description": "Wound photo",
        "category": [
            {
                "coding": [
                    {
                        "system": "https://fhir.virtual-hospital.example/CodeSystem/"
                        "document-category",
                        "code": "photo",
                    }
                ]
            }
        ],
        "author": [{"identifier": {"system": SYS_USER, "value": str(clinician.pk)}}],
        "content": [
            {"attachment": {"contentType": "image/png", "data": base64.b64encode(content).decode()}}
        ],
    }
    response = send(system_api(), "POST", "/fhir/DocumentReference", resource)
    assert response.status_code == 201, response.content
    body = response.json()
    document = DocumentReference.objects.get(fhir_id=body["id"])
    assert document.content_type == "image/png" and document.category == "photo"
    assert document.filename == "document.png" and document.recorded_by == clinician
    assert open_document(document)[:8] == b"\x89PNG\r\n\x1a\n"
    assert body["content"][0]["attachment"]["contentType"] == "image/png"
    assert body["description"] == "Wound photo"


def test_clinical_note_is_signed_by_the_writer(
    fhir_client: Callable[..., Client], record: Patient, clinician: User
) -> None:
    api = fhir_client(clinician, "user/DocumentReference.cruds")
    resource = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{record.fhir_id}"},
        "description": "Follow-up call",
        "type": {"coding": [{"system": LOINC, "code": "34109-9"}]},
        "category": [
            {
                "coding": [
                    {
                        "system": "https://fhir.virtual-hospital.example/CodeSystem/"
                        "document-category",
                        "code": "clinical-note",
                    }
                ]
            }
        ],
        "content": [{"attachment": {"data": base64.b64encode(b"Feels better.").decode()}}],
    }
    response = send(api, "POST", "/fhir/DocumentReference", resource)
    assert response.status_code == 201, response.content
    note = ClinicalNote.objects.get(fhir_id=response.json()["id"])
    assert note.text == "Feels better." and note.recorded_by == clinician and note.signature
    # signed notes are never edited
    stored = response.json()
    edited = send(api, "PUT", f"/fhir/DocumentReference/{note.fhir_id}", stored)
    assert edited.status_code == 422
    assert "never changed" in edited.json()["issue"][0]["diagnostics"]


# ---------------------------------------------------------------------------------------------
# Conditional create and update, versions


def test_conditional_create_twice_gives_one_resource(system_api: Callable[..., Client]) -> None:
    api = system_api()
    criteria = f"identifier={SYS_AHV}|756.9999.8888.77"
    first = send(api, "POST", "/fhir/Patient", patient_json(), HTTP_IF_NONE_EXIST=criteria)
    second = send(api, "POST", "/fhir/Patient", patient_json(), HTTP_IF_NONE_EXIST=criteria)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert Patient.objects.filter(ahv_number="756.9999.8888.77").count() == 1
    assert Patient.objects.get(ahv_number="756.9999.8888.77").version == 1


def test_conditional_create_with_several_matches_is_412(
    system_api: Callable[..., Client], make_patient: Callable[..., Patient]
) -> None:
    make_patient(family_name="Twin")
    make_patient(family_name="Twin")
    response = send(
        system_api(), "POST", "/fhir/Patient", patient_json(), HTTP_IF_NONE_EXIST="family=Twin"
    )
    assert response.status_code == 412
    assert response.json()["issue"][0]["code"] == "multiple-matches"
    assert not Patient.objects.filter(family_name="Muster").exists()


def test_conditional_update_creates_then_updates(system_api: Callable[..., Client]) -> None:
    api = system_api()
    url = f"/fhir/Patient?identifier={SYS_AHV}|756.9999.8888.77"
    created = send(api, "PUT", url, patient_json())
    assert created.status_code == 201, created.content
    updated = send(api, "PUT", url, patient_json(family="Renamed"))
    assert updated.status_code == 200, updated.content
    assert updated.json()["id"] == created.json()["id"]
    assert updated["ETag"] == 'W/"2"'
    assert updated["Location"].endswith(f"/Patient/{created.json()['id']}/_history/2")
    stored = Patient.objects.get(ahv_number="756.9999.8888.77")
    assert stored.family_name == "Renamed" and stored.version == 2


def test_update_with_a_stale_if_match_is_412(
    system_api: Callable[..., Client], record: Patient, make_observation: Callable[..., Any]
) -> None:
    api = system_api()
    observation = make_observation(record)
    resource = to_fhir(observation)
    url = f"/fhir/Observation/{observation.fhir_id}"
    ok = send(api, "PUT", url, {**resource, "status": "amended"}, HTTP_IF_MATCH='W/"1"')
    assert ok.status_code == 200 and ok["ETag"] == 'W/"2"'
    stale = send(api, "PUT", url, {**resource, "status": "corrected"}, HTTP_IF_MATCH='W/"1"')
    assert stale.status_code == 412
    assert "current version is 2" in stale.json()["issue"][0]["diagnostics"]
    observation.refresh_from_db()
    assert observation.status == "amended" and observation.version == 2


def test_update_of_an_unknown_uuid_creates_it(
    system_api: Callable[..., Client], record: Patient, heart_rate: Concept
) -> None:
    new_id = str(uuid.uuid4())
    resource = {**observation_json(record), "id": new_id}
    response = send(system_api(), "PUT", f"/fhir/Observation/{new_id}", resource)
    assert response.status_code == 201, response.content
    assert Observation.objects.filter(fhir_id=new_id, patient=record).exists()


def test_body_id_must_match_the_url(
    system_api: Callable[..., Client], record: Patient, heart_rate: Concept
) -> None:
    resource = {**observation_json(record), "id": str(uuid.uuid4())}
    response = send(system_api(), "PUT", f"/fhir/Observation/{uuid.uuid4()}", resource)
    assert response.status_code == 400
    assert "is not the id in the URL" in response.json()["issue"][0]["diagnostics"]


def test_prefer_return_minimal_and_operation_outcome(
    system_api: Callable[..., Client], record: Patient, heart_rate: Concept
) -> None:
    api = system_api()
    minimal = send(
        api, "POST", "/fhir/Observation", observation_json(record), HTTP_PREFER="return=minimal"
    )
    assert minimal.status_code == 201 and minimal.content == b""
    assert "/fhir/Observation/" in minimal["Location"]
    outcome = send(
        api,
        "POST",
        "/fhir/Observation",
        observation_json(record),
        HTTP_PREFER="return=OperationOutcome",
    )
    assert outcome.json()["resourceType"] == "OperationOutcome"
    assert outcome.json()["issue"][0]["severity"] == "information"


def test_writes_are_audited(system_api: Callable[..., Client], record: Patient) -> None:
    response = send(system_api(), "PUT", f"/fhir/Patient/{record.fhir_id}", to_fhir(record))
    assert response.status_code == 200
    event = AuditEvent.objects.filter(object_type="fhir.Patient", action="update").get()
    assert event.object_id == str(record.fhir_id) and event.patient_id == str(record.pk)
    assert event.detail["kind"] == "system"


# ---------------------------------------------------------------------------------------------
# Who may write


def test_read_only_scope_cannot_write(
    fhir_client: Callable[..., Client], record: Patient, patient: User, heart_rate: Concept
) -> None:
    api = fhir_client(patient, "patient/Observation.rs")
    response = send(api, "POST", "/fhir/Observation", observation_json(record))
    assert response.status_code == 403
    assert "patient/Observation.c" in response.json()["issue"][0]["diagnostics"]
    assert not Observation.objects.exists()


def test_patient_adds_home_measurements_to_its_own_record_only(
    fhir_client: Callable[..., Client],
    record: Patient,
    record2: Patient,
    patient: User,
    heart_rate: Concept,
) -> None:
    api = fhir_client(patient, "patient/Observation.cruds", "patient/Condition.cruds")
    mine = send(api, "POST", "/fhir/Observation", observation_json(record))
    assert mine.status_code == 201, mine.content
    assert Observation.objects.get(patient=record).recorded_by == patient
    theirs = send(api, "POST", "/fhir/Observation", observation_json(record2))
    assert theirs.status_code == 404
    condition = {"resourceType": "Condition", "subject": {"reference": f"Patient/{record.fhir_id}"}}
    assert send(api, "POST", "/fhir/Condition", condition).status_code == 403
    assert Observation.objects.filter(patient=record2).count() == 0


def test_outsider_writing_to_a_patient_not_theirs_gets_404_audited(
    fhir_client: Callable[..., Client], record: Patient, outsider: User, heart_rate: Concept
) -> None:
    api = fhir_client(outsider, "user/*.cruds")
    response = send(api, "POST", "/fhir/Observation", observation_json(record))
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert not Observation.objects.exists()
    denied = AuditEvent.objects.get(action="denied", object_type="fhir.Observation")
    assert denied.actor_id == outsider.pk and denied.patient_id == str(record.pk)


def test_outsider_cannot_update_an_existing_row(
    fhir_client: Callable[..., Client],
    record: Patient,
    outsider: User,
    make_observation: Callable[..., Observation],
) -> None:
    observation = make_observation(record)
    api = fhir_client(outsider, "user/*.cruds")
    resource = {**to_fhir(observation), "status": "entered-in-error"}
    response = send(api, "PUT", f"/fhir/Observation/{observation.fhir_id}", resource)
    assert response.status_code == 404
    observation.refresh_from_db()
    assert observation.status == "final" and observation.version == 1
    assert AuditEvent.objects.filter(action="denied", object_type="fhir.Observation").exists()


def test_clinician_writes_in_its_care_team_as_recorder(
    fhir_client: Callable[..., Client], record: Patient, clinician: User, patient: User
) -> None:
    concept = Concept.objects.create(
        system=LOINC, code="8867-4", display="Heart rate", category="vital-signs", unit="/min"
    )
    api = fhir_client(clinician, "user/Observation.cruds")
    claimed = {"identifier": {"system": SYS_USER, "value": str(patient.pk)}}
    response = send(api, "POST", "/fhir/Observation", observation_json(record, performer=[claimed]))
    assert response.status_code == 201, response.content
    stored = Observation.objects.get(fhir_id=response.json()["id"])
    assert stored.recorded_by == clinician and stored.code == concept


def test_staff_tokens_cannot_register_patients(
    fhir_client: Callable[..., Client], clinician: User
) -> None:
    response = send(fhir_client(clinician, "user/*.cruds"), "POST", "/fhir/Patient", patient_json())
    assert response.status_code == 403
    assert not Patient.objects.exists()


def test_ahv_number_held_by_another_patient_is_409(
    system_api: Callable[..., Client], record: Patient
) -> None:
    response = send(system_api(), "POST", "/fhir/Patient", patient_json(ahv=record.ahv_number))
    assert response.status_code == 409
    assert "already held by another patient" in response.json()["issue"][0]["diagnostics"]
    assert Patient.objects.filter(ahv_number=record.ahv_number).count() == 1


def test_read_only_type_cannot_be_written(
    system_api: Callable[..., Client], record: Patient
) -> None:
    encounter = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "VR"},
        "subject": {"reference": f"Patient/{record.fhir_id}"},
    }
    assert send(system_api(), "POST", "/fhir/Encounter", encounter).status_code == 405


def test_clinician_updates_demographics_of_its_patients_only(
    fhir_client: Callable[..., Client], record: Patient, clinician: User, outsider: User
) -> None:
    resource = {**to_fhir(record), "telecom": [{"system": "phone", "value": "+41 22 111 22 33"}]}
    url = f"/fhir/Patient/{record.fhir_id}"
    assert send(fhir_client(outsider, "user/*.cruds"), "PUT", url, resource).status_code == 404
    response = send(fhir_client(clinician, "user/Patient.u"), "PUT", url, resource)
    assert response.status_code == 200, response.content
    record.refresh_from_db()
    assert record.phone == "+41 22 111 22 33" and record.version == 2
    assert record.user is not None  # columns FHIR does not carry are kept


def test_document_update_changes_metadata_never_content(
    system_api: Callable[..., Client], record: Patient, clinician: User
) -> None:
    api = system_api()
    resource = {
        "resourceType": "DocumentReference",
        "status": "current",
        "subject": {"reference": f"Patient/{record.fhir_id}"},
        "description": "Scan",
        "author": [{"identifier": {"system": SYS_USER, "value": str(clinician.pk)}}],
        "content": [{"attachment": {"data": base64.b64encode(png_bytes()).decode()}}],
    }
    created = send(api, "POST", "/fhir/DocumentReference", resource).json()
    url = f"/fhir/DocumentReference/{created['id']}"
    renamed = send(api, "PUT", url, {**created, "description": "Knee scan"})
    assert renamed.status_code == 200, renamed.content
    document = DocumentReference.objects.get(fhir_id=created["id"])
    assert document.title == "Knee scan" and document.content_type == "image/png"
    other = Image.new("RGB", (5, 5), (0, 0, 0))
    out = io.BytesIO()
    other.save(out, "PNG")
    replaced = {
        **created,
        "content": [{"attachment": {"data": base64.b64encode(out.getvalue()).decode()}}],
    }
    response = send(api, "PUT", url, replaced)
    assert response.status_code == 422
    assert "never changes" in response.json()["issue"][0]["diagnostics"]
    document.refresh_from_db()
    assert document.title == "Knee scan" and document.version == 2


def test_observation_annotations_are_appended(
    system_api: Callable[..., Client], record: Patient, clinician: User, heart_rate: Concept
) -> None:
    api = system_api()
    author = {"identifier": {"system": SYS_USER, "value": str(clinician.pk)}}
    resource = observation_json(record, note=[{"authorReference": author, "text": "At rest"}])
    created = send(api, "POST", "/fhir/Observation", resource).json()
    assert [n["text"] for n in created["note"]] == ["At rest"]
    more = {**created, "note": [*created["note"], {"authorReference": author, "text": "Repeat"}]}
    updated = send(api, "PUT", f"/fhir/Observation/{created['id']}", more)
    assert updated.status_code == 200, updated.content
    assert [n["text"] for n in updated.json()["note"]] == ["At rest", "Repeat"]
    foreign = {**created, "note": [{"id": "999999", "text": "x", "authorReference": author}]}
    response = send(api, "PUT", f"/fhir/Observation/{created['id']}", foreign)
    assert response.status_code == 422
    assert "is not an annotation of this observation" in response.json()["issue"][0]["diagnostics"]


def test_note_is_amended_by_a_new_note(
    fhir_client: Callable[..., Client], record: Patient, clinician: User
) -> None:
    from apps.records.access import get_patient_for_user
    from apps.records.fhir import EXT
    from apps.records.services.clinical import do_write_note

    access = get_patient_for_user(clinician, record.pk, action=None)
    original = do_write_note(access, clinician, kind="progress", title="Visit", text="Typo")
    amendment = {
        **stripped(to_fhir(original)),
        "relatesTo": [
            {"code": "replaces", "target": {"reference": f"DocumentReference/{original.fhir_id}"}}
        ],
        "extension": [{"url": EXT + "amendment-reason", "valueString": "typo"}],
        "content": [{"attachment": {"data": base64.b64encode(b"Fixed").decode()}}],
    }
    api = fhir_client(clinician, "user/DocumentReference.c")
    response = send(api, "POST", "/fhir/DocumentReference", amendment)
    assert response.status_code == 201, response.content
    original.refresh_from_db()
    assert original.status == ClinicalNote.Status.AMENDED
    new = ClinicalNote.objects.get(fhir_id=response.json()["id"])
    assert new.amends == original and new.text == "Fixed" and new.amendment_reason == "typo"
