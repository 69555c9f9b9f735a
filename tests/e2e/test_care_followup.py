"""Care-pathway notifications in a real browser, on a phone: the patient marks a dose taken
with one tap and answers a follow-up questionnaire (first with a mistake, then right); the nurse
reads the flagged answers in the chart. Every page passes axe-core and fits 360 px."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps.accounts.models import Organization, Role, User
from apps.care.models import (
    DoseReminder,
    Questionnaire,
    QuestionnaireRequest,
    QuestionnaireResponse,
)
from apps.care.services.questionnaires import load_reference_questionnaires
from apps.records.access import get_patient_for_user
from apps.records.models import Medication, MedicationRequest, Patient, Practitioner
from apps.records.services.care_team import default_team, do_add_member
from apps.records.services.prescriptions import do_sign_prescription
from tests.conftest import signed_in_client, verified_client
from tests.e2e.conftest import check_accessibility, share_session

pytestmark = pytest.mark.e2e

ZURICH = ZoneInfo("Europe/Zurich")


@pytest.fixture
def scene(make_user: Callable[..., User], organization: Organization) -> dict[str, Any]:
    physician = make_user(
        Role.PHYSICIAN, organization=organization, first_name="Jean", last_name="Favre"
    )
    nurse = make_user(Role.NURSE, organization=organization, first_name="Sophie", last_name="Meier")
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
    team = default_team(patient)
    do_add_member(team, physician, is_lead=True)
    do_add_member(team, nurse)
    medication = Medication.objects.create(name="Bisoprolol 5 mg cp", atc_code="C07AB07")
    do_sign_prescription(
        get_patient_for_user(physician, patient.pk, action=None),
        physician,
        [
            {
                "medication": medication,
                "dose": "1 comprimé",
                "route": "oral",
                "frequency": 1,
                "duration_days": 30,
                "quantity": 1,
            }
        ],
    )
    line = MedicationRequest.objects.get(patient=patient)
    moment = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(minutes=10)
    dose = DoseReminder.objects.create(
        patient=patient,
        line=line,
        scheduled_for=moment,
        local_time=moment.astimezone(ZURICH).strftime("%H:%M"),
        send_at=moment,
        status=DoseReminder.Status.SENT,
        sent_at=moment,
    )
    load_reference_questionnaires()
    request_obj = QuestionnaireRequest.objects.create(
        patient=patient,
        questionnaire=Questionnaire.objects.get(code="post-op-follow-up"),
        key="e2e:post-op:day1",
        due_at=moment,
        expires_at=moment + dt.timedelta(days=2),
        status=QuestionnaireRequest.Status.SENT,
        sent_at=moment,
    )
    return {
        "patient_user": patient_user,
        "patient": patient,
        "nurse": nurse,
        "dose": dose,
        "request": request_obj,
    }


def test_patient_takes_a_dose_and_answers_a_questionnaire(
    page: Page, live_server: Any, scene: dict[str, Any]
) -> None:
    dose: DoseReminder = scene["dose"]
    share_session(page, signed_in_client(scene["patient_user"]), live_server.url)

    # My care: today's dose with its one-tap buttons, the questionnaire waiting, the chart.
    page.goto("/care/")
    row = page.locator(f"#dose-{dose.pk}")
    expect(row).to_contain_text("Bisoprolol 5 mg cp")
    expect(page.locator("canvas[data-adherence-chart]")).to_be_visible()
    check_accessibility(page)

    # One tap: the row is replaced in place (no reload), the answer recorded.
    page.evaluate("window.__sameDocument = true")
    row.locator("button[value=taken]").click()
    expect(page.locator(f"#dose-{dose.pk} form")).to_have_count(0)
    expect(page.locator(f"#dose-{dose.pk} .tag")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True
    dose.refresh_from_db()
    assert dose.status == DoseReminder.Status.TAKEN

    # The questionnaire: a pain of 12 is refused next to its question.
    page.locator(f"a[href='/care/questionnaires/{scene['request'].pk}/']").click()
    page.locator("#q-pain").fill("12")
    page.locator("input[name=fever][value=no]").check()
    page.locator("input[name=wound][value=redness]").check()
    page.locator("input[name=nausea][value=none]").check()
    page.locator("input[name=mobility][value=limited]").check()
    page.locator("form[data-questionnaire-form] button[type=submit]").click()
    expect(page.locator("#q-pain-error")).to_be_visible()
    expect(page.locator("#q-pain")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("[data-error-summary]")).to_be_focused()
    check_accessibility(page)

    page.locator("#q-pain").fill("4")
    page.locator("#q-comment").fill("La cicatrice est un peu rouge.")
    page.locator("form[data-questionnaire-form] button[type=submit]").click()
    expect(page).to_have_url(f"{live_server.url}/care/")
    expect(page.locator(".message-success")).to_be_visible()
    answers = QuestionnaireResponse.objects.get(request=scene["request"]).answers
    assert answers["pain"] == 4 and answers["wound"] == "redness"

    page.goto("/care/reminders/")
    check_accessibility(page)


def test_the_nurse_reads_the_follow_up_tab_on_a_phone(
    page: Page, live_server: Any, scene: dict[str, Any]
) -> None:
    from apps.care.services.questionnaires import do_answer_questionnaire

    response = do_answer_questionnaire(
        scene["patient_user"],
        scene["request"],
        {"pain": "8", "fever": "yes", "wound": "discharge", "nausea": "none", "mobility": "help"},
    )
    share_session(page, verified_client(scene["nurse"]), live_server.url)

    page.goto(f"/clinic/patients/{scene['patient'].pk}/follow-up/")
    expect(page.locator("[data-flagged]")).to_have_count(1)
    check_accessibility(page)

    page.locator(f"a[href='/clinic/questionnaire-responses/{response.pk}/']").click()
    expect(page.locator("tr[data-alert]")).to_have_count(3)
    check_accessibility(page)
