"""AuditEvent over FHIR: administrators and backend systems only; a valid R4 mapping."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.test import Client
from oauth2_provider.models import AccessToken

from apps.accounts.models import User
from apps.audit.fhir import audit_event_to_fhir, audit_fhir_id
from apps.audit.models import Action, AuditEvent, Outcome
from apps.audit.services import record as audit
from apps.interop.fhir_api.oauth import do_create_fhir_client
from apps.records.fhir import validate
from apps.records.models import Observation, Patient, Practitioner
from tests.interop.conftest import entries


@pytest.fixture
def reads(
    record: Patient,
    record2: Patient,
    practitioner: Practitioner,
    fhir_client: Callable[..., Client],
    make_observation: Callable[..., Observation],
) -> Observation:
    """The clinician reads an Observation of `record`, then a patient of `record2` (audited)."""
    observation = make_observation(record)
    clinician = fhir_client(practitioner.user, "user/*.rs")
    assert clinician.get(f"/fhir/Observation/{observation.fhir_id}").status_code == 200
    assert clinician.get(f"/fhir/Patient/{record2.fhir_id}").status_code == 200
    return observation


def system_client(scopes: str) -> Client:
    client, _secret = do_create_fhir_client("Audit reader", scopes)
    token = "audit-reader-token"
    AccessToken.objects.create(
        application=client.application,
        token=token,
        scope=scopes,
        expires="2999-01-01T00:00:00Z",
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/fhir+json")


def test_admin_token_searches_and_reads_audit_events(
    reads: Observation,
    record: Patient,
    admin_user: User,
    fhir_client: Callable[..., Client],
) -> None:
    # given
    admin = fhir_client(admin_user, "user/AuditEvent.rs")
    # when
    response = admin.get("/fhir/AuditEvent", {"patient": str(record.fhir_id)})
    # then
    assert response.status_code == 200, response.content
    events = entries(response.json())
    assert events and all(
        {"reference": f"Patient/{record.fhir_id}"} in [e["what"] for e in event["entity"]]
        for event in events
    )
    read = next(e for e in events if e.get("subtype", [{}])[0].get("code") == "read")
    assert {"reference": f"Observation/{reads.fhir_id}"} in [e["what"] for e in read["entity"]]
    single = admin.get(f"/fhir/AuditEvent/{read['id']}")
    assert single.status_code == 200 and single.json() == read


def test_system_token_searches_by_agent_action_and_date(
    reads: Observation, practitioner: Practitioner
) -> None:
    api = system_client("system/AuditEvent.rs")
    bundle = api.get(
        "/fhir/AuditEvent",
        {"agent": f"Practitioner/{practitioner.fhir_id}", "action": "R", "date": "ge2000-01-01"},
    ).json()
    events = entries(bundle)
    assert len(events) == 2  # the two reads, not the token issue
    assert all(
        e["agent"][0]["who"]["reference"] == f"Practitioner/{practitioner.fhir_id}" for e in events
    )
    assert api.get("/fhir/AuditEvent", {"date": "lt2000-01-01"}).json()["total"] == 0


def test_system_token_needs_the_audit_scope(reads: Observation) -> None:
    api = system_client("system/Observation.rs")
    assert api.get("/fhir/AuditEvent").status_code == 403


@pytest.mark.parametrize("who", ["clinician", "patient", "billing_user"])
def test_other_tokens_do_not_see_the_type(
    reads: Observation,
    who: str,
    request: pytest.FixtureRequest,
    fhir_client: Callable[..., Client],
) -> None:
    user: User = request.getfixturevalue(who)
    context = "patient" if user.is_patient else "user"
    api = fhir_client(user, f"{context}/*.rs")
    event = AuditEvent.objects.latest("seq")
    for response in (
        api.get("/fhir/AuditEvent"),
        api.get(f"/fhir/AuditEvent/{audit_fhir_id(event)}"),
    ):
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"


def test_mapping_of_a_fhir_read_is_valid_r4(
    reads: Observation, record: Patient, practitioner: Practitioner
) -> None:
    event = AuditEvent.objects.filter(object_type="fhir.Observation").latest("seq")
    resource = audit_event_to_fhir(event)
    validate(resource)
    assert resource["id"] == audit_fhir_id(event) == str(uuid.UUID(event.hash[:32]))
    assert resource["type"]["code"] == "rest"
    assert resource["subtype"][0]["code"] == "read"
    assert resource["action"] == "R" and resource["outcome"] == "0"
    agent = resource["agent"][0]
    assert agent["requestor"] is True
    assert agent["who"]["reference"] == f"Practitioner/{practitioner.fhir_id}"
    assert agent["network"]["address"] == "127.0.0.1"
    what = [entity["what"] for entity in resource["entity"]]
    assert what == [
        {"reference": f"Observation/{reads.fhir_id}"},
        {"reference": f"Patient/{record.fhir_id}"},
    ]


def test_mapping_of_other_events_is_valid_r4(
    record: Patient, patient: User, clinician: User
) -> None:
    denied = audit(
        Action.DENIED,
        actor=clinician,
        obj=record,
        patient_id=str(record.pk),
        outcome=Outcome.DENIED,
    )
    login = audit(Action.LOGIN, actor=patient, ip="192.0.2.7")
    glass = audit(Action.BREAK_GLASS, actor=clinician, patient_id=str(record.pk))
    resources = [audit_event_to_fhir(e) for e in (denied, login, glass)]
    for resource in resources:
        validate(resource)
    denied_fhir, login_fhir, glass_fhir = resources
    assert denied_fhir["outcome"] == "4" and denied_fhir["outcomeDesc"]
    # the patient row is named by its FHIR id, never by its database key
    assert denied_fhir["entity"][0]["what"] == {"reference": f"Patient/{record.fhir_id}"}
    assert login_fhir["type"]["code"] == "110114"
    assert login_fhir["agent"][0]["who"]["reference"] == f"Patient/{record.fhir_id}"
    assert login_fhir["agent"][0]["network"] == {"address": "192.0.2.7", "type": "2"}
    assert glass_fhir["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"


def test_unknown_audit_event_is_404(db: None) -> None:
    api = system_client("system/AuditEvent.rs")
    response = api.get("/fhir/AuditEvent/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404


def test_search_parameters_and_paging(reads: Observation) -> None:
    api = system_client("system/AuditEvent.rs")
    newest = AuditEvent.objects.latest("seq")
    by_id = api.get("/fhir/AuditEvent", {"_id": audit_fhir_id(newest)}).json()
    assert [e["id"] for e in entries(by_id)] == [audit_fhir_id(newest)]
    assert api.get("/fhir/AuditEvent", {"patient": "Patient/not-an-id"}).json()["total"] == 0
    assert api.get("/fhir/AuditEvent", {"outcome": "4"}).json()["total"] == 0
    first = api.get("/fhir/AuditEvent", {"_count": "1", "_sort": "date"}).json()
    assert entries(first)[0]["id"] == audit_fhir_id(AuditEvent.objects.earliest("seq"))
    assert any(link["relation"] == "next" for link in first["link"])
    wrong = api.get("/fhir/AuditEvent", {"subtype": "read"})
    assert wrong.status_code == 400 and "Known:" in wrong.json()["issue"][0]["diagnostics"]
