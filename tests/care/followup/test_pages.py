"""The patient's follow-up pages and the clinician's chart tab: what they show, what their
forms do, and that nobody else reaches them (404, audited)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.care.models import (
    CarePreferences,
    DoseReminder,
    Questionnaire,
    QuestionnaireRequest,
    QuestionnaireResponse,
)
from apps.care.services.questionnaires import do_answer_questionnaire
from apps.records.models import MedicationRequest, Patient
from tests.conftest import signed_in_client, verified_client

from .pages_support import Scene, add_request, build_scene

GOOD = {"pain": "2", "fever": "no", "wound": "normal", "nausea": "none", "mobility": "normal"}


@pytest.fixture
def scene(
    prescribe: Callable[..., MedicationRequest],
    record: Patient,
    coordinator: User,
    questionnaires: dict[str, Questionnaire],
) -> Scene:
    return build_scene(prescribe, record, coordinator, questionnaires)


def client_for(user: User, language: str = "en") -> Client:
    client = verified_client(user) if user.is_staff_member else signed_in_client(user)
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = language
    return client


def test_my_care_shows_doses_questionnaires_plans_and_adherence(
    scene: Scene, patient: User
) -> None:
    response = client_for(patient).get("/care/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Bisoprolol 5 mg" in page
    assert f'hx-post="/care/doses/{scene.dose.pk}/answer/"' in page
    assert f'href="/care/questionnaires/{scene.request.pk}/"' in page
    assert "Post-operative follow-up" in page  # in the reader's language
    assert f'href="/care/plans/{scene.plan.pk}/"' in page
    assert 'id="adherence-series"' in page
    assert 'href="/care/reminders/"' in page
    # doses, questionnaires and plans follow reminders and plan changes live
    assert f'{{"type": "care.plan", "patient": "{scene.line.patient_id}"}}' in page
    assert '"kind": ["care.reminder", "care.questionnaire"]' in page
    for section in ("doses", "questionnaires", "plans"):
        assert f'data-live-section="{section}"' in page
    assert AuditEvent.objects.filter(
        action=Action.READ, actor_id=patient.pk, patient_id=str(scene.line.patient_id)
    ).exists()


def test_one_tap_taken_returns_the_updated_row(scene: Scene, patient: User) -> None:
    client = client_for(patient)

    response = client.post(
        f"/care/doses/{scene.dose.pk}/answer/", {"answer": "taken"}, HTTP_HX_REQUEST="true"
    )

    assert response.status_code == 200
    row = response.content.decode()
    assert row.startswith(f'<li class="thread-row" id="dose-{scene.dose.pk}">')
    assert "<form" not in row and "Taken" in row
    scene.dose.refresh_from_db()
    assert scene.dose.status == DoseReminder.Status.TAKEN

    again = client.post(
        f"/care/doses/{scene.dose.pk}/answer/", {"answer": "skipped"}, HTTP_HX_REQUEST="true"
    )
    assert "You already answered this reminder." in again.content.decode()
    scene.dose.refresh_from_db()
    assert scene.dose.status == DoseReminder.Status.TAKEN


def test_the_dose_page_answers_without_javascript(scene: Scene, patient: User) -> None:
    client = client_for(patient)
    page = client.get(f"/care/doses/{scene.dose.pk}/")
    assert page.status_code == 200
    assert "Bisoprolol 5 mg" in page.content.decode()

    response = client.post(
        f"/care/doses/{scene.dose.pk}/answer/",
        {"answer": "skipped", "reason": "Nausées", "next": f"/care/doses/{scene.dose.pk}/"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == f"/care/doses/{scene.dose.pk}/"
    scene.dose.refresh_from_db()
    assert (scene.dose.status, scene.dose.skip_reason) == ("skipped", "Nausées")
    assert "Thank you, your answer is recorded." in response.content.decode()


def test_a_dose_answer_without_a_choice_is_refused(scene: Scene, patient: User) -> None:
    response = client_for(patient).post(
        f"/care/doses/{scene.dose.pk}/answer/", {"answer": "maybe"}, HTTP_HX_REQUEST="true"
    )
    assert 'role="alert"' in response.content.decode()
    scene.dose.refresh_from_db()
    assert scene.dose.status == DoseReminder.Status.SENT


def test_the_questionnaire_form_is_accessible_and_shows_errors_by_field(
    scene: Scene, patient: User
) -> None:
    client = client_for(patient)
    url = f"/care/questionnaires/{scene.request.pk}/"

    page = client.get(url).content.decode()
    assert "<fieldset" in page and "<legend>How does your wound look?" in page
    assert 'type="radio" name="wound" value="discharge"' in page
    assert (
        'type="number" id="q-pain" name="pain"' in page and 'min="0"' in page and 'max="10"' in page
    )

    response = client.post(url, {**GOOD, "pain": "12", "wound": ""})

    assert response.status_code == 400
    body = response.content.decode()
    assert 'aria-invalid="true" aria-describedby="q-pain-error"' in body
    assert 'id="q-pain-error">Enter a number from 0 to 10.' in body
    assert '<fieldset aria-describedby="q-wound-error" id="q-wound">' in body
    assert 'value="12"' in body  # what was typed stays
    assert not QuestionnaireResponse.objects.exists()


def test_answering_the_questionnaire_sends_it_to_the_team(scene: Scene, patient: User) -> None:
    client = client_for(patient)
    url = f"/care/questionnaires/{scene.request.pk}/"

    response = client.post(url, GOOD)

    assert response.status_code == 302 and response["Location"] == "/care/"
    assert QuestionnaireResponse.objects.get().request == scene.request
    after = client.get(url).content.decode()
    assert "You answered on" in after and '<form method="post" class="narrow"' not in after
    # sent again (a second tab): refused with a message, nothing stored twice
    again = client.post(url, GOOD, follow=True)
    assert "You already answered this questionnaire." in again.content.decode()
    assert QuestionnaireResponse.objects.count() == 1


def test_reminder_preferences_are_validated_and_saved(record: Patient, patient: User) -> None:
    client = client_for(patient)
    assert client.get("/care/reminders/").status_code == 200
    form = {
        "medication_reminders": "on",
        "time_zone": "Europe/Paris",
        "dose_1": "07:30",
        "dose_2": "12:30",
        "dose_3": "19:00",
        "dose_4": "21:30",
        "quiet_start": "22:00",
        "quiet_end": "06:30",
    }

    bad = client.post(
        "/care/reminders/",
        {**form, "dose_2": "07:00", "quiet_end": "", "time_zone": "Mars/Olympus"},
    )
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "The dose times must follow each other through the day." in text
    assert "Give both the start and the end of the quiet hours." in text
    assert "Select a valid choice." in text
    assert not CarePreferences.objects.exists()

    good = client.post("/care/reminders/", form)
    assert good.status_code == 302
    prefs = CarePreferences.objects.get(patient=record)
    assert prefs.time_zone == "Europe/Paris"
    assert prefs.dose_times == ["07:30", "12:30", "19:00", "21:30"]
    assert (prefs.quiet_start, prefs.quiet_end) == (dt.time(22), dt.time(6, 30))
    assert AuditEvent.objects.filter(
        object_type="care.carepreferences", actor_id=patient.pk, action=Action.CREATE
    ).exists()


def test_the_follow_up_tab_puts_flagged_answers_first_and_reads_them_in_my_language(
    scene: Scene,
    record: Patient,
    patient: User,
    nurse: User,
    questionnaires: dict[str, Questionnaire],
) -> None:
    calm = add_request(record, questionnaires["post-op-follow-up"], "t:calm")
    do_answer_questionnaire(patient, calm, GOOD)
    worrying = do_answer_questionnaire(patient, scene.request, {**GOOD, "pain": "9"})

    page = client_for(nurse).get(f"/clinic/patients/{record.pk}/follow-up/").content.decode()

    assert "Bisoprolol 5 mg" in page
    first = page.index(f"/clinic/questionnaire-responses/{worrying.pk}/")
    assert first < page.index(f"/clinic/questionnaire-responses/{calm.response.pk}/")
    german = client_for(nurse, "de").get(f"/clinic/questionnaire-responses/{worrying.pk}/")
    assert german.status_code == 200
    text = german.content.decode()
    assert "Wie stark sind Ihre Schmerzen heute" in text
    assert "<strong>9</strong>" in text


PATIENT_PAGES = ["my_care", "reminders"]
OBJECT_PAGES = ["dose", "dose_answer", "questionnaire_get", "questionnaire_post"]
CLINIC_PAGES = ["followup_tab", "response"]


def _call(client: Client, page: str, scene: Scene, response_pk: int) -> Any:
    pk = scene.line.patient_id
    calls = {
        "my_care": lambda: client.get("/care/"),
        "reminders": lambda: client.get("/care/reminders/"),
        "dose": lambda: client.get(f"/care/doses/{scene.dose.pk}/"),
        "dose_answer": lambda: client.post(
            f"/care/doses/{scene.dose.pk}/answer/", {"answer": "taken"}
        ),
        "questionnaire_get": lambda: client.get(f"/care/questionnaires/{scene.request.pk}/"),
        "questionnaire_post": lambda: client.post(
            f"/care/questionnaires/{scene.request.pk}/", GOOD
        ),
        "followup_tab": lambda: client.get(f"/clinic/patients/{pk}/follow-up/"),
        "response": lambda: client.get(f"/clinic/questionnaire-responses/{response_pk}/"),
    }
    return calls[page]()


@pytest.mark.parametrize(
    ("who", "page"),
    [
        *[(who, page) for who in ("outsider", "billing_user") for page in PATIENT_PAGES],
        *[
            (who, page)
            for who in ("outsider", "patient2", "billing_user", "clinician")
            for page in OBJECT_PAGES
        ],
        *[
            (who, page)
            for who in ("outsider", "patient2", "billing_user", "patient")
            for page in CLINIC_PAGES
        ],
    ],
)
def test_others_get_404_and_the_refusal_is_audited(
    scene: Scene,
    record: Patient,
    record2: Patient,
    questionnaires: dict[str, Questionnaire],
    who: str,
    page: str,
    request: pytest.FixtureRequest,
) -> None:
    other = add_request(record, questionnaires["post-op-follow-up"], "t:answered")
    response_obj = do_answer_questionnaire(record.user, other, GOOD)  # type: ignore[arg-type]
    user: User = request.getfixturevalue(who)

    response = _call(client_for(user), page, scene, response_obj.pk)

    assert response.status_code == 404
    assert AuditEvent.objects.filter(action=Action.DENIED, actor_id=user.pk).exists()
    scene.dose.refresh_from_db()
    scene.request.refresh_from_db()
    assert scene.dose.status == DoseReminder.Status.SENT
    assert scene.request.status == QuestionnaireRequest.Status.SENT


def test_my_care_shows_times_in_the_patients_own_zone(
    scene: Scene, record: Patient, patient: User
) -> None:
    from zoneinfo import ZoneInfo

    CarePreferences.objects.create(patient=record, time_zone="America/New_York")
    new_york = scene.dose.scheduled_for.astimezone(ZoneInfo("America/New_York"))
    zurich = scene.dose.scheduled_for.astimezone(ZoneInfo("Europe/Zurich"))

    page = client_for(patient).get("/care/").content.decode()

    assert f"· {new_york:%H:%M}</strong>" in page
    assert f"· {zurich:%H:%M}</strong>" not in page


def test_the_follow_up_tab_sums_up_satisfaction(
    record: Patient, patient: User, nurse: User, questionnaires: dict[str, Questionnaire]
) -> None:
    survey = questionnaires["satisfaction-consultation"]
    for key, overall, recommend in (("s:1", "4", "9"), ("s:2", "5", "10"), ("s:3", "2", "5")):
        request_obj = add_request(record, survey, key)
        do_answer_questionnaire(
            patient,
            request_obj,
            {"overall": overall, "recommend": recommend, "comment": f"Avis {key}"},
        )

    page = client_for(nurse).get(f"/clinic/patients/{record.pk}/follow-up/").content.decode()

    # (4 + 5 + 2) / 3; two promoters, one detractor of three: NPS 33
    assert "<dd>3.7 / 5</dd>" in page
    assert "<dd>33</dd>" in page
    assert "Avis s:3" in page
