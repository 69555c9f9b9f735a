"""My care and the follow-up tab make a fixed number of queries, however much there is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.care.models import CarePlan, Questionnaire
from apps.care.services.questionnaires import do_answer_questionnaire
from apps.care.services.reminders import do_answer_dose
from apps.records.models import MedicationRequest, Patient
from tests.conftest import signed_in_client, verified_client

from .pages_support import add_dose, add_request, build_scene
from .test_pages import GOOD


def count(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def more_of_everything(
    prescribe: Callable[..., MedicationRequest],
    record: Patient,
    patient: User,
    coordinator: User,
    questionnaires: dict[str, Questionnaire],
    n: int,
) -> None:
    from django.utils import timezone

    for i in range(n):
        line = prescribe(timezone.now(), frequency=1, name=f"Médicament {i}")
        dose = add_dose(line, minutes_ago=30 + i)
        if i % 2:
            do_answer_dose(patient, dose, bool(i % 3))
        add_dose(line, minutes_ago=-60 - i, status="planned", sent_at=None)
        waiting = add_request(record, questionnaires["heart-failure-symptoms"], f"t:{i}")
        answered = add_request(record, questionnaires["post-op-follow-up"], f"a:{i}")
        do_answer_questionnaire(patient, answered, {**GOOD, "pain": str(i % 10)})
        del waiting
        CarePlan.objects.create(
            patient=record, title=f"Plan {i}", created_by=coordinator, coordinator=coordinator
        )


def test_my_care_queries_do_not_grow(
    prescribe: Callable[..., MedicationRequest],
    record: Patient,
    patient: User,
    coordinator: User,
    questionnaires: dict[str, Questionnaire],
    django_assert_num_queries: Any,
) -> None:
    scene = build_scene(prescribe, record, coordinator, questionnaires)
    do_answer_dose(patient, scene.dose, True)
    client = signed_in_client(patient)
    client.get("/care/")
    one = count(client, "/care/")

    more_of_everything(prescribe, record, patient, coordinator, questionnaires, 8)

    with django_assert_num_queries(one):
        page = client.get("/care/").content.decode()
    assert page.count('class="thread-row" id="dose-') >= 9


def test_follow_up_tab_queries_do_not_grow(
    prescribe: Callable[..., MedicationRequest],
    record: Patient,
    patient: User,
    nurse: User,
    coordinator: User,
    questionnaires: dict[str, Questionnaire],
    django_assert_num_queries: Any,
) -> None:
    scene = build_scene(prescribe, record, coordinator, questionnaires)
    do_answer_dose(patient, scene.dose, True)
    do_answer_questionnaire(patient, scene.request, GOOD)
    client = verified_client(nurse)
    url = f"/clinic/patients/{record.pk}/follow-up/"
    client.get(url)
    one = count(client, url)

    more_of_everything(prescribe, record, patient, coordinator, questionnaires, 8)

    with django_assert_num_queries(one):
        page = client.get(url).content.decode()
    assert page.count("data-adherence-line") >= 4
    assert page.count("data-request-row") == 17
