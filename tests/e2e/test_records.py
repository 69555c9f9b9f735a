"""The patient record in a real browser: a physician annotates and prescribes, the patient
downloads the prescription; every record page passes axe-core at 360 px."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps.accounts.models import Organization, Role, User
from apps.records.access import get_patient_for_user
from apps.records.models import (
    AllergyIntolerance,
    CodeSystem,
    Concept,
    Condition,
    Medication,
    Observation,
    ObservationNote,
    Patient,
    Practitioner,
    Prescription,
)
from apps.records.services.care_team import default_team, do_add_member
from apps.records.services.clinical import do_write_note
from tests.conftest import signed_in_client, verified_client
from tests.e2e.conftest import check_accessibility, share_session

pytestmark = pytest.mark.e2e


@pytest.fixture
def chart(make_user: Callable[..., User], organization: Organization) -> dict[str, Any]:
    """A patient with a portal account, a physician on the care team, and some history."""
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
        ahv_number="756.9217.0769.85",
    )
    do_add_member(default_team(patient), physician)
    pulse, _ = Concept.objects.get_or_create(
        system=CodeSystem.LOINC,
        code="8867-4",
        defaults={
            "display": "Heart rate",
            "display_fr": "Fréquence cardiaque",
            "category": "vital-signs",
            "unit": "/min",
            "low": Decimal(50),
            "high": Decimal(100),
            "explanation_fr": "Le nombre de battements du cœur par minute.",
        },
    )
    now = timezone.now()
    for day in range(30):
        Observation.objects.create(
            patient=patient,
            code=pulse,
            category="vital-signs",
            value=Decimal(70 + day % 9 + (40 if day == 0 else 0)),
            unit="/min",
            ref_low=pulse.low,
            ref_high=pulse.high,
            effective_at=now - dt.timedelta(days=day),
        )
    hypertension, _ = Concept.objects.get_or_create(
        system=CodeSystem.ICD10,
        code="I10",
        defaults={"display": "Essential hypertension", "display_fr": "Hypertension essentielle"},
    )
    Condition.objects.create(patient=patient, code=hypertension)
    penicillin, _ = Concept.objects.get_or_create(
        system=CodeSystem.SNOMED,
        code="764146007",
        defaults={"display": "Penicillin", "display_fr": "Pénicilline", "atc_prefix": "J01C"},
    )
    AllergyIntolerance.objects.create(
        patient=patient, substance=penicillin, category="medication", criticality="high"
    )
    Medication.objects.get_or_create(
        name="Amoxicilline 1000 mg cp", defaults={"atc_code": "J01CA04"}
    )
    Medication.objects.get_or_create(name="Paracétamol 500 mg cp", defaults={"atc_code": "N02BE01"})
    access = get_patient_for_user(physician, patient.pk, action=None)
    do_write_note(access, physician, kind="consultation", title="Téléconsultation", text="RAS")
    return {"physician": physician, "patient_user": patient_user, "patient": patient}


def test_physician_annotates_and_prescribes_then_patient_downloads(
    page: Page, live_server: Any, chart: dict[str, Any]
) -> None:
    patient: Patient = chart["patient"]
    share_session(page, verified_client(chart["physician"]), live_server.url)

    # the physician finds the patient in "My patients" and opens the chart
    page.goto("/clinic/patients/")
    page.get_by_role("link", name="Dubois Marie").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Marie Dubois")
    expect(page.get_by_text("Pénicilline")).to_be_visible()

    # they open the results, see the chart, and annotate the high heart rate
    page.get_by_role("navigation", name="Sections du dossier").get_by_role(
        "link", name="Résultats"
    ).click()
    expect(page.locator("canvas[data-observation-chart]")).to_be_visible()
    page.locator("td.flag-H, td.flag-HH").first.locator("xpath=..").get_by_role("link").click()
    page.locator("textarea[name=text]").fill("Mesure prise après un effort, à refaire au repos.")
    page.get_by_role("button", name="Annoter").click()
    expect(page.get_by_text("Mesure prise après un effort")).to_be_visible()
    assert ObservationNote.objects.filter(observation__patient=patient).count() == 1

    # they prescribe amoxicillin: the penicillin allergy warning asks for a reason
    page.goto(f"/clinic/patients/{patient.pk}/prescriptions/new/")
    page.locator("select[name=items-0-medication]").select_option(
        label="Amoxicilline 1000 mg cp (J01CA04)"
    )
    page.locator("input[name=items-0-dose]").fill("1 cp")
    page.locator("input[name=items-0-frequency]").fill("3")
    page.locator("input[name=items-0-duration_days]").fill("7")
    page.locator("input[name=items-0-quantity]").fill("1")
    page.get_by_role("button", name="Signer l'ordonnance").click()
    expect(page.locator(".warning-box").first).to_contain_text("Pénicilline")
    check_accessibility(page)
    page.locator("textarea[name=override_reason]").fill(
        "Allergie ancienne non confirmée, tests cutanés négatifs en 2024."
    )
    page.get_by_role("button", name="Signer malgré les avertissements").click()
    prescription = Prescription.objects.get(patient=patient)
    expect(page.get_by_text(prescription.number).first).to_be_visible()
    assert prescription.status == "active" and prescription.override_reason

    # the patient signs in to the portal and downloads the prescription
    page.context.clear_cookies()
    share_session(page, signed_in_client(chart["patient_user"]), live_server.url)
    page.goto("/record/prescriptions/")
    page.get_by_role("link", name=prescription.number).first.click()
    with page.expect_download() as download_info:
        page.locator(f"a[href='/prescriptions/{prescription.pk}/pdf/']").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".pdf")
    path = download.path()
    assert path is not None and open(path, "rb").read(5) == b"%PDF-"  # noqa: PTH123


CLINIC_PAGES = [
    "",
    "results/",
    "reports/",
    "documents/",
    "documents/upload/",
    "notes/",
    "notes/new/",
    "prescriptions/",
    "prescriptions/new/",
    "timeline/",
    "care-team/",
]
PATIENT_PAGES = [
    "/record/",
    "/record/results/",
    "/record/reports/",
    "/record/documents/",
    "/record/documents/upload/",
    "/record/prescriptions/",
    "/record/timeline/",
    "/record/access-log/",
    "/record/export/",
]


def test_every_record_page_is_accessible_on_a_phone(
    page: Page, live_server: Any, chart: dict[str, Any]
) -> None:
    patient: Patient = chart["patient"]
    share_session(page, verified_client(chart["physician"]), live_server.url)
    for path in ["/clinic/patients/", "/clinic/emergency-access/"] + [
        f"/clinic/patients/{patient.pk}/{suffix}" for suffix in CLINIC_PAGES
    ]:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        check_accessibility(page)
    page.context.clear_cookies()
    share_session(page, signed_in_client(chart["patient_user"]), live_server.url)
    for path in PATIENT_PAGES:
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        check_accessibility(page)
