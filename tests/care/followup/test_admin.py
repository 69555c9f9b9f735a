"""The follow-up admin: questionnaires edited with their questions checked; reminder
preferences validated; requests and dose reminders read-only, opening one audited."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.care.models import CarePreferences, DoseReminder, Questionnaire, QuestionnaireRequest
from apps.records.models import MedicationRequest, Patient
from tests.conftest import verified_client

from .pages_support import add_dose, add_request


@pytest.fixture
def client(admin_user: User) -> Client:
    client = verified_client(admin_user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def questionnaire_form(items: Any) -> dict[str, Any]:
    return {
        "code": "pain-check",
        "title": "Contrôle de la douleur",
        "title_en": "",
        "title_de": "",
        "purpose": "follow-up",
        "status": "active",
        "answer_within_days": "2",
        "items": json.dumps(items),
    }


def test_questions_are_checked_before_a_questionnaire_is_saved(client: Client) -> None:
    bad = [{"link_id": "pain", "text": "Douleur", "type": "integer", "min": 10, "max": 0}]
    response = client.post("/admin/care/questionnaire/add/", questionnaire_form(bad))

    assert response.status_code == 200
    assert "question 1 (pain): min is larger than max" in response.content.decode()
    assert not Questionnaire.objects.exists()

    good = [{"link_id": "pain", "text": "Douleur", "type": "integer", "min": 0, "max": 10}]
    response = client.post("/admin/care/questionnaire/add/", questionnaire_form(good))
    assert response.status_code == 302
    assert Questionnaire.objects.get(code="pain-check").items == good


def test_preferences_are_validated(client: Client, record: Patient) -> None:
    data = {
        "patient": str(record.pk),
        "time_zone": "Moon/Base",
        "medication_reminders": "on",
        "dose_times": json.dumps(["09:00", "08:00", "18:00", "22:00"]),
        "quiet_start": "22:00",
        "quiet_end": "",
    }
    response = client.post("/admin/care/carepreferences/add/", data)
    text = response.content.decode()
    assert "Unknown time zone" in text
    assert "Four times of the day in order" in text
    assert "Give both the start and the end of the quiet hours." in text
    assert not CarePreferences.objects.exists()


def test_requests_and_doses_are_read_only_and_opening_one_is_audited(
    client: Client,
    admin_user: User,
    record: Patient,
    prescribe: Callable[..., MedicationRequest],
    questionnaires: dict[str, Questionnaire],
) -> None:
    from django.utils import timezone

    dose = add_dose(prescribe(timezone.now(), name="Bisoprolol 5 mg"))
    request_obj = add_request(record, questionnaires["post-op-follow-up"], "t:admin")

    for model, row in (("dosereminder", dose), ("questionnairerequest", request_obj)):
        assert client.get(f"/admin/care/{model}/").status_code == 200
        page = client.get(f"/admin/care/{model}/{row.pk}/change/")
        assert page.status_code == 200
        assert "Bisoprolol" not in page.content.decode()
        assert AuditEvent.objects.filter(
            action=Action.READ,
            actor_id=admin_user.pk,
            object_type=f"care.{model}",
            object_id=str(row.pk),
            patient_id=str(record.pk),
        ).exists()
        assert client.get(f"/admin/care/{model}/add/").status_code == 403
    client.post(f"/admin/care/dosereminder/{dose.pk}/change/", {"status": "taken"})
    assert DoseReminder.objects.get(pk=dose.pk).status == DoseReminder.Status.SENT
    assert QuestionnaireRequest.objects.get(pk=request_obj.pk).status == "sent"
