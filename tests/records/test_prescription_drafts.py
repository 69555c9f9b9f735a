"""Drafts written through the FHIR API: reviewed, signed or discarded by a physician."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.http import Http404
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from pypdf import PdfReader

from apps.accounts.models import Role, User
from apps.accounts.services import do_issue_token
from apps.audit.models import AuditEvent
from apps.notifications.models import Notification
from apps.records.access import get_patient_for_user
from apps.records.models import (
    AllergyIntolerance,
    CodeSystem,
    Concept,
    Medication,
    MedicationRequest,
    MedicationStatement,
    Patient,
    Practitioner,
    Prescription,
)
from apps.records.services import RecordError
from apps.records.services.break_glass import do_break_glass
from apps.records.services.care_team import default_team, do_add_member
from apps.records.services.prescription_documents import (
    prescription_pdf,
)
from apps.records.services.prescription_drafts import (
    do_change_draft_line,
    do_discard_draft,
    do_sign_draft,
    review_draft,
)
from apps.records.services.prescriptions import (
    PrescriptionWarnings,
)
from tests.conftest import signed_in_client, verified_client

NUMBER_RE = re.compile(r"^RX-\d{4}-\d{6,}$")
FHIR = "application/fhir+json"


@pytest.fixture
def amoxicillin(medication: Callable[..., Medication]) -> Medication:
    return medication("Amoxicilline 500 mg", "J01CA04")


@pytest.fixture
def paracetamol(medication: Callable[..., Medication]) -> Medication:
    return medication("Paracétamol 500 mg", "N02BE01")


@pytest.fixture
def penicillin_allergy(record: Patient, concept: Callable[..., Concept]) -> AllergyIntolerance:
    substance = concept(
        "764146007",
        CodeSystem.SNOMED,
        display="Penicillin",
        category="allergen",
        unit="",
        atc_prefix="J01C",
    )
    return AllergyIntolerance.objects.create(
        patient=record, substance=substance, category="medication", criticality="high"
    )


def _access(user: User, patient: Patient) -> Any:
    return get_patient_for_user(user, patient.pk, action=None)


def _last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


def _fhir(user: User, scopes: str = "user/*.cruds") -> Client:
    secret, _token = do_issue_token(user, name="draft test", scopes=scopes.split())
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_ACCEPT=FHIR)


def _post_request(api: Client, patient: Patient, drug: Medication, **extra: Any) -> Any:
    resource = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient.fhir_id}"},
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
        **extra,
    }
    response = api.post("/fhir/MedicationRequest", data=json.dumps(resource), content_type=FHIR)
    assert response.status_code == 201, response.content
    return response.json()


# ---------------------------------------------------------------------------------------------
# The service


def test_a_draft_made_through_the_fhir_api_is_signed_like_a_portal_prescription(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    medication: Callable[..., Medication],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given: two lines of one draft written by the physician's app
    api = _fhir(clinician)
    first = _post_request(api, record, paracetamol)
    ibuprofen = medication("Ibuprofène 400 mg", "M01AE01")
    second = _post_request(api, record, ibuprofen, groupIdentifier=first["groupIdentifier"])
    draft = MedicationRequest.objects.get(fhir_id=first["id"]).prescription
    old_token = draft.verification_token
    # when
    with django_capture_on_commit_callbacks(execute=True):
        signed = do_sign_draft(draft, _access(clinician, record), clinician, valid_days=30)
    # then: numbered, dated, with a fresh verification code, and the same rows
    signed.refresh_from_db()
    assert signed.pk == draft.pk and signed.status == "active"
    assert NUMBER_RE.match(signed.number) and signed.signed_at is not None
    assert signed.valid_until == timezone.localdate() + dt.timedelta(days=30)
    assert signed.verification_token != old_token and len(signed.verification_token) >= 32
    assert signed.prescriber == clinician and signed.warnings == []
    lines = list(signed.items.order_by("pk"))
    assert [str(line.fhir_id) for line in lines] == [first["id"], second["id"]]
    assert all(line.version == 2 for line in lines)
    statements = MedicationStatement.objects.filter(prescription=signed)
    assert {s.medication for s in statements} == {paracetamol, ibuprofen}
    assert all(s.status == "active" for s in statements)
    event = AuditEvent.objects.get(action="sign", object_id=str(signed.pk))
    assert event.actor_id == clinician.pk and event.patient_id == str(record.pk)
    assert event.detail["draft"] is True and event.detail["items"] == 2
    notification = Notification.objects.get(user=record.user)
    assert notification.link == reverse("records:prescription", args=[signed.pk])
    assert "Paracétamol" not in notification.title + notification.body
    # the API now shows the lines as active, grouped under the prescription number
    read = api.get(f"/fhir/MedicationRequest/{first['id']}").json()
    assert read["status"] == "active" and read["groupIdentifier"]["value"] == signed.number
    # and the PDF carries the number
    text = " ".join(
        page.extract_text() for page in PdfReader(io.BytesIO(prescription_pdf(signed))).pages
    )
    assert signed.number in " ".join(text.split())


def test_warnings_must_be_acknowledged_with_a_reason(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    amoxicillin: Medication,
    penicillin_allergy: AllergyIntolerance,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, amoxicillin)
    access = _access(clinician, record)
    review = review_draft(draft)
    assert [w.kind for w in review.warnings] == ["allergy"] and review.problem == ""
    # no reason
    with pytest.raises(PrescriptionWarnings) as stop:
        do_sign_draft(draft, access, clinician)
    assert stop.value.fingerprint == review.fingerprint
    # a reason, but for other warnings than the ones now raised
    with pytest.raises(PrescriptionWarnings):
        do_sign_draft(draft, access, clinician, override_reason="Testé", acknowledged="0" * 16)
    draft.refresh_from_db()
    assert draft.status == "draft" and not MedicationStatement.objects.exists()
    # when: a reason for the warnings shown
    signed = do_sign_draft(
        draft,
        access,
        clinician,
        override_reason="Tests cutanés négatifs en 2024",
        acknowledged=review.fingerprint,
    )
    # then
    assert signed.status == "active" and signed.override_reason == "Tests cutanés négatifs en 2024"
    assert signed.warnings[0]["kind"] == "allergy" and "J01C" in signed.warnings[0]["codes"]
    assert AuditEvent.objects.get(action="sign").detail["overridden"] is True


def test_only_a_physician_of_the_care_team_may_sign(
    record: Patient,
    clinician: User,
    outsider: User,
    make_user: Callable[..., User],
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol)
    nurse = make_user(Role.NURSE, organization=clinician.organization)
    do_add_member(default_team(record), nurse)
    Practitioner.objects.create(user=nurse, registration_number="7601000999999")
    with pytest.raises(RecordError):
        do_sign_draft(draft, _access(nurse, record), nurse)
    # an outsider does not even get an access
    with pytest.raises(Http404):
        _access(outsider, record)
    # an emergency access lets a physician read the chart, not sign someone else's draft
    Practitioner.objects.create(user=outsider, registration_number="7601000888888")
    do_break_glass(outsider, record.pk, "Urgence vitale, patient inconscient")
    with pytest.raises(RecordError):
        do_sign_draft(draft, _access(outsider, record), outsider)
    # a physician of the team without a registration number cannot sign either
    with translation.override("en"), pytest.raises(RecordError, match="registration"):
        do_sign_draft(draft, _access(clinician, record), clinician)
    draft.refresh_from_db()
    assert draft.status == "draft" and not AuditEvent.objects.filter(action="sign").exists()


def test_another_physician_of_the_team_signs_and_becomes_the_prescriber(
    record: Patient,
    clinician: User,
    make_user: Callable[..., User],
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol)
    colleague = make_user(Role.PHYSICIAN, organization=clinician.organization)
    do_add_member(default_team(record), colleague)
    Practitioner.objects.create(user=colleague, registration_number="7601000777777")
    signed = do_sign_draft(draft, _access(colleague, record), colleague)
    assert signed.prescriber == colleague
    event = AuditEvent.objects.get(action="sign")
    assert event.actor_id == colleague.pk and event.detail["drafted_by"] == clinician.pk


def test_an_invalid_line_blocks_signing(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol, dose="  ")
    with translation.override("en"):
        assert "dose" in review_draft(draft).problem
        with pytest.raises(RecordError, match="dose"):
            do_sign_draft(draft, _access(clinician, record), clinician)
    empty = make_draft(record)
    with pytest.raises(RecordError):
        do_sign_draft(empty, _access(clinician, record), clinician)
    assert not Prescription.objects.exclude(status="draft").exists()


def test_a_signed_draft_cannot_be_signed_again_or_discarded(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol)
    access = _access(clinician, record)
    signed = do_sign_draft(draft, access, clinician)
    number = signed.number
    with pytest.raises(RecordError):
        do_sign_draft(draft, access, clinician)
    with pytest.raises(RecordError):
        do_discard_draft(draft, access, clinician)
    signed.refresh_from_db()
    assert signed.number == number and MedicationStatement.objects.count() == 1


def test_discarding_deletes_the_draft_and_leaves_a_trace(
    record: Patient,
    clinician: User,
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol)
    line = draft.items.get()
    do_discard_draft(draft, _access(clinician, record), clinician)
    assert not Prescription.objects.exists() and not MedicationRequest.objects.exists()
    event = _last_event()
    assert event.action == "delete" and event.object_id == str(draft.pk)
    assert event.actor_id == clinician.pk and event.patient_id == str(record.pk)
    assert event.detail["items"] == [str(line.fhir_id)]


def test_a_nurse_cannot_discard(
    record: Patient,
    clinician: User,
    make_user: Callable[..., User],
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol)
    nurse = make_user(Role.NURSE, organization=clinician.organization)
    do_add_member(default_team(record), nurse)
    with pytest.raises(RecordError):
        do_discard_draft(draft, _access(nurse, record), nurse)
    assert Prescription.objects.filter(pk=draft.pk, status="draft").exists()


# ---------------------------------------------------------------------------------------------
# The pages


def test_the_chart_lists_drafts_first_with_a_link_to_sign(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol)
    response = verified_client(clinician).get(reverse("records:prescriptions", args=[record.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert reverse("records:prescription_draft", args=[draft.pk]) in page
    assert "Brouillon — à signer" in page
    # the detail address of a draft leads its signer to the review page
    detail = verified_client(clinician).get(reverse("records:prescription", args=[draft.pk]))
    assert detail.status_code == 302
    assert detail["Location"] == reverse("records:prescription_draft", args=[draft.pk])


def test_the_review_page_shows_the_warnings_then_signs(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    amoxicillin: Medication,
    penicillin_allergy: AllergyIntolerance,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, amoxicillin)
    client = verified_client(clinician)
    url = reverse("records:prescription_draft", args=[draft.pk])
    # given: the page shows the lines and the allergy
    response = client.get(url)
    page = response.content.decode()
    assert response.status_code == 200
    assert "Amoxicilline 500 mg" in page and "warning-box" in page and "J01C" in page
    assert 'name="override_reason"' in page
    assert _last_event().action == "read" and _last_event().object_id == str(draft.pk)
    acknowledged = response.context["form"]["acknowledged"].value()
    # when: signing without a reason
    refused = client.post(url, {"valid_days": "90", "acknowledged": acknowledged})
    # then
    assert refused.status_code == 400 and 'role="alert"' in refused.content.decode()
    assert refused.context["form"].errors["override_reason"]
    draft.refresh_from_db()
    assert draft.status == "draft"
    # when: with a reason
    signed = client.post(
        url,
        {"valid_days": "90", "acknowledged": acknowledged, "override_reason": "Tolérance connue"},
    )
    # then
    draft.refresh_from_db()
    assert signed.status_code == 302
    assert signed["Location"] == reverse("records:prescription", args=[draft.pk])
    assert draft.status == "active" and draft.override_reason == "Tolérance connue"
    detail = client.get(signed["Location"])
    assert detail.status_code == 200 and draft.number in detail.content.decode()
    # the review page of a signed prescription sends to its detail
    again = client.get(url)
    assert again.status_code == 302 and again["Location"] == signed["Location"]


def test_the_review_page_discards(
    record: Patient,
    clinician: User,
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol)
    client = verified_client(clinician)
    assert client.get(reverse("records:prescription_discard", args=[draft.pk])).status_code == 405
    response = client.post(reverse("records:prescription_discard", args=[draft.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("records:prescriptions", args=[record.pk])
    assert not Prescription.objects.exists() and _last_event().action == "delete"


def test_a_draft_with_an_invalid_line_offers_only_discarding(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol, dose="")
    response = verified_client(clinician).get(
        reverse("records:prescription_draft", args=[draft.pk])
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert reverse("records:prescription_discard", args=[draft.pk]) in page
    assert 'action="' + reverse("records:prescription_draft", args=[draft.pk]) + '"' not in page


def test_the_patient_never_sees_drafts(
    record: Patient,
    patient: User,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    medication: Callable[..., Medication],
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, medication("Ibuprofène 400 mg", "M01AE01"))
    signed = do_sign_draft(make_draft(record, paracetamol), _access(clinician, record), clinician)
    client = signed_in_client(patient)
    listing = client.get(reverse("records:my_prescriptions")).content.decode()
    assert signed.number in listing
    assert draft.number not in listing and "Ibuprofène" not in listing
    for name in ("records:prescription", "records:prescription_pdf", "records:prescription_draft"):
        response = client.get(reverse(name, args=[draft.pk]))
        assert response.status_code == 404, name
        assert "Ibuprofène" not in response.content.decode()
        assert _last_event().action == "denied" and _last_event().actor_id == patient.pk
    response = client.post(reverse("records:prescription_discard", args=[draft.pk]))
    assert response.status_code == 404 and _last_event().action == "denied"
    assert Prescription.objects.filter(pk=draft.pk, status="draft").exists()


@pytest.mark.parametrize("endpoint", ["review", "sign", "discard", "detail", "pdf"])
@pytest.mark.parametrize("who", ["outsider", "nurse", "patient2", "billing"])
def test_outsider_is_denied_404_and_audited(
    endpoint: str,
    who: str,
    record: Patient,
    record2: Patient,
    clinician: User,
    practitioner: Practitioner,
    outsider: User,
    patient2: User,
    billing_user: User,
    make_user: Callable[..., User],
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol)
    if who == "nurse":  # on the care team, but drafts are for the physicians who sign them
        nurse = make_user(Role.NURSE, organization=clinician.organization)
        do_add_member(default_team(record), nurse)
        client = verified_client(nurse)
    elif who == "patient2":
        client = signed_in_client(patient2)
    else:
        client = verified_client({"outsider": outsider, "billing": billing_user}[who])
    before = AuditEvent.objects.count()
    # when
    if endpoint == "review":
        response = client.get(reverse("records:prescription_draft", args=[draft.pk]))
    elif endpoint == "sign":
        url = reverse("records:prescription_draft", args=[draft.pk])
        response = client.post(url, {"valid_days": "90", "acknowledged": ""})
    elif endpoint == "discard":
        response = client.post(reverse("records:prescription_discard", args=[draft.pk]))
    else:
        name = "records:prescription_pdf" if endpoint == "pdf" else "records:prescription"
        response = client.get(reverse(name, args=[draft.pk]))
    # then
    assert response.status_code == 404
    assert AuditEvent.objects.count() == before + 1
    event = _last_event()
    assert event.action == "denied" and event.outcome == "denied"
    assert event.object_id == str(draft.pk)
    assert "Paracétamol" not in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == "draft"


# ---------------------------------------------------------------------------------------------
# Adjusting a line before signing


def test_a_physician_adjusts_a_line_of_a_draft_before_signing(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    # given a draft with 1 cp three times a day for 7 days
    draft = make_draft(record, paracetamol)
    line = draft.items.get()
    client = verified_client(clinician)
    url = reverse("records:prescription_draft_line", args=[draft.pk, line.pk])
    changes = {"dose": "2 cp", "frequency": "2", "duration_days": "14", "quantity": "3"}

    # when the physician changes the dose, times a day and duration
    response = client.post(url, {**changes, "instructions": "Au repas"})

    # then the line holds them, the change is audited, and the draft is still to sign
    assert response.status_code == 302
    assert response["Location"] == reverse("records:prescription_draft", args=[draft.pk])
    line.refresh_from_db()
    assert (line.dose, line.frequency, line.duration_days, line.quantity) == ("2 cp", 2, 14, 3)
    assert line.instructions == "Au repas"
    event = _last_event()
    assert event.detail["prescription"] == "draft-line-changed"
    assert event.detail["before"]["dose"] == "1 cp" and event.detail["after"]["dose"] == "2 cp"
    draft.refresh_from_db()
    assert draft.status == Prescription.Status.DRAFT
    page = client.get(reverse("records:prescription_draft", args=[draft.pk])).content.decode()
    assert "2 cp" in page


def test_a_bad_line_change_is_refused_and_changes_nothing(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, paracetamol)
    line = draft.items.get()
    access = _access(clinician, record)
    with pytest.raises(RecordError):
        do_change_draft_line(draft, access, clinician, line.pk, {"dose": "   "})
    with pytest.raises(RecordError):
        do_change_draft_line(draft, access, clinician, 999_999, {"dose": "1 cp"})
    client = verified_client(clinician)
    url = reverse("records:prescription_draft_line", args=[draft.pk, line.pk])
    response = client.post(url, {"dose": "2 cp", "frequency": "0", "duration_days": "7"})
    assert response.status_code == 302
    line.refresh_from_db()
    assert (line.dose, line.frequency) == ("1 cp", 3)
    # a signed prescription's lines are not changed this way
    signed = do_sign_draft(draft, access, clinician)
    with pytest.raises(RecordError):
        do_change_draft_line(signed, access, clinician, line.pk, {"dose": "3 cp"})


@pytest.mark.parametrize("who", ["outsider", "patient", "nurse_on_team"])
def test_only_a_physician_of_the_team_adjusts_a_draft(
    who: str,
    record: Patient,
    paracetamol: Medication,
    make_draft: Callable[..., Prescription],
    make_user: Callable[..., User],
    request: pytest.FixtureRequest,
) -> None:
    draft = make_draft(record, paracetamol)
    line = draft.items.get()
    if who == "nurse_on_team":
        user = make_user(Role.NURSE, email="nurse-draft@example.test")
        do_add_member(default_team(record), user)
    else:
        user = request.getfixturevalue(who)
    client = verified_client(user)
    url = reverse("records:prescription_draft_line", args=[draft.pk, line.pk])
    response = client.post(url, {"dose": "9 cp", "frequency": "1", "duration_days": "1"})
    assert response.status_code == 404
    line.refresh_from_db()
    assert line.dose == "1 cp"
    assert AuditEvent.objects.filter(
        actor_id=user.pk, outcome="denied", object_type="records.prescription"
    ).exists()
