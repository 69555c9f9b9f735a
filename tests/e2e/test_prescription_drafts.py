"""A draft sent through the FHIR API, signed in a real browser by the physician of the team."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from apps.accounts.models import Organization, Role, User
from apps.accounts.services import do_issue_token
from apps.records.models import (
    AllergyIntolerance,
    CodeSystem,
    Concept,
    Medication,
    MedicationRequest,
    Patient,
    Practitioner,
    Prescription,
)
from apps.records.services.care_team import default_team, do_add_member
from tests.conftest import signed_in_client, verified_client
from tests.e2e.conftest import check_accessibility, share_session

pytestmark = pytest.mark.e2e

FHIR = "application/fhir+json"


@pytest.fixture
def draft_chart(make_user: Callable[..., User], organization: Organization) -> dict[str, Any]:
    """A patient allergic to penicillin and a physician whose app drafted amoxicillin."""
    physician = make_user(
        Role.PHYSICIAN, organization=organization, first_name="Jean", last_name="Favre"
    )
    Practitioner.objects.create(user=physician, registration_number="7601000234567")
    patient_user = make_user(Role.PATIENT, first_name="Marie", last_name="Dubois")
    patient = Patient.objects.create(
        user=patient_user,
        organization=organization,
        family_name="Dubois",
        given_names="Marie",
        birth_date=dt.date(1958, 4, 12),
        sex="female",
    )
    do_add_member(default_team(patient), physician)
    penicillin, _ = Concept.objects.get_or_create(
        system=CodeSystem.SNOMED,
        code="764146007",
        defaults={"display": "Penicillin", "display_fr": "Pénicilline", "atc_prefix": "J01C"},
    )
    AllergyIntolerance.objects.create(
        patient=patient, substance=penicillin, category="medication", criticality="high"
    )
    amoxicillin, _ = Medication.objects.get_or_create(
        name="Amoxicilline 1000 mg cp", defaults={"atc_code": "J01CA04"}
    )
    # The physician's app writes the draft through the FHIR API, as a real client would.
    secret, _token = do_issue_token(physician, name="app", scopes=["user/*.cruds"])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_ACCEPT=FHIR)
    resource = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "subject": {"reference": f"Patient/{patient.fhir_id}"},
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": amoxicillin.atc_code}],
        },
        "dosageInstruction": [
            {
                "text": "1 cp",
                "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
            }
        ],
    }
    response = api.post("/fhir/MedicationRequest", data=json.dumps(resource), content_type=FHIR)
    assert response.status_code == 201, response.content
    draft = MedicationRequest.objects.get(fhir_id=response.json()["id"]).prescription
    return {"physician": physician, "patient_user": patient_user, "patient": patient, "rx": draft}


def test_physician_reviews_acknowledges_the_warning_and_signs_a_draft(
    page: Page, live_server: Any, draft_chart: dict[str, Any]
) -> None:
    patient: Patient = draft_chart["patient"]
    draft: Prescription = draft_chart["rx"]
    share_session(page, verified_client(draft_chart["physician"]), live_server.url)

    # the draft waits at the top of the chart's prescriptions
    page.goto(f"/clinic/patients/{patient.pk}/prescriptions/")
    expect(page.get_by_text("Brouillon — à signer")).to_be_visible()
    check_accessibility(page)
    page.get_by_role("link", name="Vérifier et signer").click()

    # the review page shows the line and the allergy before anything is signed
    expect(page.get_by_role("heading", name="Brouillon d'ordonnance à signer")).to_be_visible()
    expect(page.get_by_role("cell").filter(has_text="Amoxicilline 1000 mg cp")).to_be_visible()
    expect(page.locator(".warning-box").first).to_contain_text("Pénicilline")
    check_accessibility(page)

    # signing without a reason is refused; with one, it goes through
    page.get_by_role("button", name="Signer malgré les avertissements").click()
    expect(page.locator("[role=alert]").first).to_contain_text("Pénicilline")
    draft.refresh_from_db()
    assert draft.status == "draft"
    check_accessibility(page)
    page.locator("textarea[name=override_reason]").fill(
        "Allergie ancienne non confirmée, tests cutanés négatifs en 2024."
    )
    page.get_by_role("button", name="Signer malgré les avertissements").click()

    # the prescription is signed: its number, its status, its PDF
    draft.refresh_from_db()
    assert draft.status == "active" and draft.number.startswith("RX-")
    expect(page.get_by_role("heading", level=2)).to_contain_text(draft.number)
    expect(page.get_by_text("Valide", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Télécharger le PDF")).to_be_visible()
    check_accessibility(page)

    # the patient now finds it in the portal
    page.context.clear_cookies()
    share_session(page, signed_in_client(draft_chart["patient_user"]), live_server.url)
    page.goto("/record/prescriptions/")
    expect(page.get_by_role("link", name=draft.number, exact=True)).to_be_visible()


def test_physician_discards_a_draft_the_patient_never_saw(
    page: Page, live_server: Any, draft_chart: dict[str, Any]
) -> None:
    patient: Patient = draft_chart["patient"]
    draft: Prescription = draft_chart["rx"]
    # before: the patient's portal does not show the draft
    share_session(page, signed_in_client(draft_chart["patient_user"]), live_server.url)
    page.goto("/record/prescriptions/")
    expect(page.get_by_text("Aucune ordonnance pour le moment.")).to_be_visible()
    assert "Amoxicilline" not in page.content()
    page.context.clear_cookies()

    share_session(page, verified_client(draft_chart["physician"]), live_server.url)
    page.goto(f"/prescriptions/{draft.pk}/draft/")
    page.get_by_role("button", name="Supprimer le brouillon").click()
    expect(page.get_by_text("Le brouillon est supprimé.")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/clinic/patients/{patient.pk}/prescriptions/")
    assert not Prescription.objects.filter(pk=draft.pk).exists()
    check_accessibility(page)
