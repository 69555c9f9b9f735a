"""Incoming resources: every problem is an OperationOutcome with the right status and path."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.records.fhir import to_fhir
from apps.records.models import Concept, Condition, Observation, Patient
from tests.interop.test_fhir_writes import (  # noqa: F401 - fixtures
    _media,
    observation_json,
    send,
    system_api,
)

ICD10 = "http://hl7.org/fhir/sid/icd-10"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def issue(response: Any) -> dict[str, Any]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]  # type: ignore[no-any-return]


@pytest.fixture
def api(system_api: Callable[..., Client]) -> Client:  # noqa: F811 - the imported fixture
    return system_api()


def condition_json(patient: Patient, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
        "code": {"coding": [{"system": ICD10, "code": "I10"}]},
        "subject": {"reference": f"Patient/{patient.fhir_id}"},
    }
    resource.update(extra)
    return resource


@pytest.fixture
def hypertension(concept: Callable[..., Concept]) -> Concept:
    return concept("I10", system=ICD10, category="problem")


def test_malformed_json_is_400(api: Client) -> None:
    response = send(api, "POST", "/fhir/Observation", '{"resourceType": "Observation", ')
    assert response.status_code == 400
    assert "not valid JSON" in issue(response)["diagnostics"]


def test_a_json_array_is_400(api: Client) -> None:
    response = send(api, "POST", "/fhir/Observation", "[]")
    assert response.status_code == 400
    assert "one JSON object" in issue(response)["diagnostics"]


def test_wrong_resource_type_is_400(api: Client, record: Patient, heart_rate: Concept) -> None:
    response = send(api, "POST", "/fhir/Condition", observation_json(record))
    assert response.status_code == 400
    found = issue(response)
    assert "resourceType is 'Observation'" in found["diagnostics"]
    assert found["expression"] == ["Condition.resourceType"]
    assert not Observation.objects.exists()


def test_missing_status_is_400_naming_the_element(
    api: Client, record: Patient, heart_rate: Concept
) -> None:
    resource = observation_json(record)
    del resource["status"]
    response = send(api, "POST", "/fhir/Observation", resource)
    assert response.status_code == 400
    found = issue(response)
    assert "status" in found["diagnostics"] and "required" in found["diagnostics"]
    assert not Observation.objects.exists()


def test_status_outside_the_required_binding_is_422(
    api: Client, record: Patient, heart_rate: Concept
) -> None:
    response = send(api, "POST", "/fhir/Observation", observation_json(record, status="done"))
    assert response.status_code == 422
    found = issue(response)
    assert found["expression"] == ["Observation.status"]
    assert "'done' is not a ObservationStatus code" in found["diagnostics"]


def test_value_with_data_absent_reason_breaks_obs_6(
    api: Client, record: Patient, heart_rate: Concept
) -> None:
    resource = observation_json(record, dataAbsentReason={"text": "not measured"})
    response = send(api, "POST", "/fhir/Observation", resource)
    assert response.status_code == 422
    assert issue(response)["diagnostics"].startswith("obs-6")


def test_component_with_the_observation_code_and_a_value_breaks_obs_7(
    api: Client, record: Patient, heart_rate: Concept
) -> None:
    component = {"code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}}
    resource = observation_json(record, component=[component])
    response = send(api, "POST", "/fhir/Observation", resource)
    assert response.status_code == 422
    assert "obs-7" in issue(response)["diagnostics"]


def test_condition_invariants(api: Client, record: Patient, hypertension: Concept) -> None:
    # con-3: a problem-list condition needs its clinical status
    missing = condition_json(record)
    del missing["clinicalStatus"]
    assert "con-3" in issue(send(api, "POST", "/fhir/Condition", missing))["diagnostics"]
    # con-4: abated but still active
    abated = condition_json(record, abatementDateTime="2024-01-01")
    response = send(api, "POST", "/fhir/Condition", abated)
    assert response.status_code == 422 and "con-4" in issue(response)["diagnostics"]
    # con-5: entered in error yet with a clinical status
    in_error = condition_json(
        record,
        verificationStatus={"coding": [{"system": VERIFICATION, "code": "entered-in-error"}]},
    )
    response = send(api, "POST", "/fhir/Condition", in_error)
    assert response.status_code == 422 and "con-5" in issue(response)["diagnostics"]
    # unknown clinical status code
    bad = condition_json(record, clinicalStatus={"coding": [{"system": CLINICAL, "code": "x"}]})
    assert send(api, "POST", "/fhir/Condition", bad).status_code == 422
    assert not Condition.objects.exists()
    # and a valid one goes in
    assert send(api, "POST", "/fhir/Condition", condition_json(record)).status_code == 201


def test_reference_to_a_missing_resource_is_422_naming_it(
    api: Client, record: Patient, heart_rate: Concept
) -> None:
    missing = f"Encounter/{uuid.uuid4()}"
    resource = observation_json(record, encounter={"reference": missing})
    response = send(api, "POST", "/fhir/Observation", resource)
    assert response.status_code == 422
    found = issue(response)
    assert missing in found["diagnostics"] and found["expression"] == ["Observation.encounter"]
    assert not Observation.objects.exists()


def test_reference_to_a_missing_patient_is_422_for_a_system(
    api: Client, heart_rate: Concept, db: None
) -> None:
    resource = observation_json(Patient(fhir_id=uuid.uuid4()))
    response = send(api, "POST", "/fhir/Observation", resource)
    assert response.status_code == 422
    assert "does not exist" in issue(response)["diagnostics"]


def test_reference_to_another_server_is_422(
    api: Client, record: Patient, heart_rate: Concept
) -> None:
    resource = observation_json(
        record, encounter={"reference": f"https://elsewhere.example/fhir/Encounter/{uuid.uuid4()}"}
    )
    response = send(api, "POST", "/fhir/Observation", resource)
    assert response.status_code == 422
    assert "this server" in issue(response)["diagnostics"]


def test_unknown_code_is_422(api: Client, record: Patient, heart_rate: Concept) -> None:
    resource = observation_json(
        record, code={"coding": [{"system": "http://loinc.org", "code": "0000-0"}]}
    )
    response = send(api, "POST", "/fhir/Observation", resource)
    assert response.status_code == 422
    assert "Unknown code" in issue(response)["diagnostics"]


def test_version_conflict_is_412(
    api: Client, record: Patient, make_observation: Callable[..., Observation]
) -> None:
    observation = make_observation(record)
    response = send(
        api,
        "PUT",
        f"/fhir/Observation/{observation.fhir_id}",
        to_fhir(observation),
        HTTP_IF_MATCH='W/"7"',
    )
    assert response.status_code == 412
    assert issue(response)["code"] == "conflict"


def test_subject_of_a_stored_resource_cannot_change(
    api: Client, record: Patient, record2: Patient, make_observation: Callable[..., Observation]
) -> None:
    observation = make_observation(record)
    moved = {**to_fhir(observation), "subject": {"reference": f"Patient/{record2.fhir_id}"}}
    response = send(api, "PUT", f"/fhir/Observation/{observation.fhir_id}", moved)
    assert response.status_code == 422
    assert "cannot change" in issue(response)["diagnostics"]


def test_sensitive_label_beyond_the_role_is_403(
    fhir_client: Callable[..., Client],
    record: Patient,
    make_user: Callable[..., User],
    heart_rate: Concept,
) -> None:
    from apps.records.services.care_team import default_team, do_add_member

    nurse = make_user("nurse")
    do_add_member(default_team(record), nurse)
    labelled = observation_json(
        record,
        meta={
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PSY"}
            ]
        },
    )
    response = send(fhir_client(nurse, "user/*.cruds"), "POST", "/fhir/Observation", labelled)
    assert response.status_code == 403
    assert "mental_health" in issue(response)["diagnostics"]
    assert not Observation.objects.exists()


def test_non_json_content_type_is_415(api: Client) -> None:
    response = api.post("/fhir/Observation", data="<Observation/>", content_type="application/xml")
    assert response.status_code == 415
