"""The decision-support pages: the chart tab shows each proposal's reason and data and lets a
clinician accept or dismiss it; "Check again now" runs the rules; the clinic list shows my
patients' open proposals. Everyone else gets 404, audited. Query counts stay constant."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.care.models import Proposal, Rule, Task
from apps.care.services.support.engine import evaluate_patient
from apps.care.services.support.proposals import do_dismiss_proposal
from apps.records.models import Patient, Prescription
from tests.care.helpers import client_for, denials

from ..conftest import access_as
from .conftest import NOW, SYSTOLIC, TODAY, day

HIGH_WEEK = [[142, 148], [145, 150], [140, 146], [147, 149], [143, 141], [150, 144], [146, 148]]


@pytest.fixture
def lab_proposal(rules: dict[str, Rule], record: Patient, take: Callable[..., Any]) -> Proposal:
    take(record, "Ramipril 5 mg cp", started_on=TODAY - dt.timedelta(days=10))
    [proposal] = evaluate_patient(record, now=NOW)
    return proposal


@pytest.fixture
def bp_proposal(
    rules: dict[str, Rule],
    record: Patient,
    take: Callable[..., Any],
    daily_readings: Callable[..., Any],
) -> Proposal:
    take(record, "Lisinopril 10 mg cp", dosage="10 mg le matin")
    daily_readings(record, SYSTOLIC, HIGH_WEEK)
    [proposal] = evaluate_patient(record, now=NOW)
    return proposal


def tab(chart: Patient) -> str:
    return f"/clinic/patients/{chart.pk}/decision-support/"


def test_the_tab_shows_the_reason_and_the_data(
    bp_proposal: Proposal, record: Patient, nurse: User
) -> None:
    response = client_for(nurse).get(tab(record))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Review the antihypertensive treatment" in html
    assert "daily mean above 135 mm[Hg] on each of the last 7 days" in html
    assert f'id="proposal-series-{bp_proposal.pk}"' in html  # the chart's series
    assert "14 measurements used" in html and "Lisinopril 10 mg cp" in html
    assert "rule bp-above-target-on-treatment, version 1" in html
    assert "ESH 2023" in html
    assert "Accept and draft the prescription" in html and "Dismiss" in html
    assert AuditEvent.objects.filter(
        action=Action.READ, actor_id=nurse.pk, patient_id=str(record.pk)
    ).exists()


def test_the_tab_is_in_french_by_default(
    bp_proposal: Proposal, record: Patient, nurse: User
) -> None:
    html = client_for(nurse, "fr").get(tab(record)).content.decode()
    assert "Revoir le traitement antihypertenseur" in html
    assert "moyenne quotidienne au-dessus de 135 mm[Hg]" in html


def test_accepting_a_task_from_the_tab(
    lab_proposal: Proposal, record: Patient, clinician: User, nurse: User
) -> None:
    client = client_for(clinician)
    response = client.post(
        f"/clinic/decision-support/{lab_proposal.pk}/accept/",
        {f"p{lab_proposal.pk}-assignee": nurse.pk},
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"#proposal-{lab_proposal.pk}")
    task = Task.objects.get()
    assert task.assignee == nurse
    html = client.get(tab(record)).content.decode()
    assert f"/clinic/tasks/{task.pk}/" in html
    assert "Accepted by" in html and "the task is created" in html


def test_an_assignee_off_the_team_is_refused(
    lab_proposal: Proposal, record: Patient, clinician: User, outsider: User
) -> None:
    client = client_for(clinician)
    client.post(
        f"/clinic/decision-support/{lab_proposal.pk}/accept/",
        {f"p{lab_proposal.pk}-assignee": outsider.pk},
    )
    lab_proposal.refresh_from_db()
    assert lab_proposal.status == Proposal.Status.OPEN and not Task.objects.exists()


def test_accepting_a_dosage_review_opens_the_draft(
    bp_proposal: Proposal, record: Patient, clinician: User, practitioner: Any
) -> None:
    client = client_for(clinician)
    response = client.post(f"/clinic/decision-support/{bp_proposal.pk}/accept/")
    draft = Prescription.objects.get(status=Prescription.Status.DRAFT)
    assert response["Location"] == f"/prescriptions/{draft.pk}/draft/"
    page = client.get(response["Location"])
    assert page.status_code == 200 and "Lisinopril 10 mg cp" in page.content.decode()


def test_dismissing_without_a_reason_is_refused_on_the_page(
    lab_proposal: Proposal, record: Patient, nurse: User
) -> None:
    client = client_for(nurse)
    url = f"/clinic/decision-support/{lab_proposal.pk}/dismiss/"
    response = client.post(url, {f"p{lab_proposal.pk}-reason": "  "}, follow=True)
    assert "Give the reason for dismissing the proposal." in response.content.decode()
    lab_proposal.refresh_from_db()
    assert lab_proposal.status == Proposal.Status.OPEN
    response = client.post(url, {f"p{lab_proposal.pk}-reason": "Bilan fait en ville"}, follow=True)
    lab_proposal.refresh_from_db()
    assert lab_proposal.status == Proposal.Status.DISMISSED
    assert "Bilan fait en ville" in response.content.decode()


def test_a_second_decision_shows_an_error(
    lab_proposal: Proposal, record: Patient, clinician: User, nurse: User
) -> None:
    do_dismiss_proposal(access_as(clinician, record), lab_proposal, "Déjà prévu")
    response = client_for(nurse).post(
        f"/clinic/decision-support/{lab_proposal.pk}/accept/", follow=True
    )
    assert "already decided" in response.content.decode()
    assert not Task.objects.exists()


def test_check_again_runs_the_rules(
    rules: dict[str, Rule], record: Patient, nurse: User, take: Callable[..., Any]
) -> None:
    take(record, "Warfarine 5 mg cp")
    take(record, "Ibuprofène 400 mg cp")
    client = client_for(nurse)
    response = client.post(f"/clinic/patients/{record.pk}/decision-support/check/", follow=True)
    assert "1 new proposal." in response.content.decode()
    assert Proposal.objects.filter(patient=record, rule_code="drug-interaction-major").exists()
    response = client.post(f"/clinic/patients/{record.pk}/decision-support/check/", follow=True)
    assert "nothing new to propose" in response.content.decode()


def test_the_clinic_list_shows_my_patients_open_proposals(
    lab_proposal: Proposal,
    record: Patient,
    record2: Patient,
    clinician: User,
    nurse: User,
    take: Callable[..., Any],
) -> None:
    take(record2, "Spironolactone 25 mg cp", started_on=TODAY - dt.timedelta(days=12))
    other = evaluate_patient(record2, now=NOW)[0]
    html = client_for(clinician).get("/clinic/decision-support/").content.decode()
    assert f"proposal-row-{lab_proposal.pk}" in html and f"proposal-row-{other.pk}" in html
    # the nurse is on record's team only
    html = client_for(nurse).get("/clinic/decision-support/").content.decode()
    assert f"proposal-row-{lab_proposal.pk}" in html and f"proposal-row-{other.pk}" not in html


def test_fragments_render_a_card_and_a_row(
    lab_proposal: Proposal, record: Patient, nurse: User
) -> None:
    client = client_for(nurse)
    card = client.get(f"/clinic/decision-support/{lab_proposal.pk}/").content.decode()
    assert card.strip().startswith(f'<article id="proposal-{lab_proposal.pk}"')
    row = client.get(f"/clinic/decision-support/{lab_proposal.pk}/?row=1").content.decode()
    assert row.strip().startswith(f'<tr id="proposal-row-{lab_proposal.pk}"')


ENDPOINTS = [
    ("get", "tab"),
    ("post", "check"),
    ("post", "accept"),
    ("post", "dismiss"),
    ("get", "fragment"),
]


def url_of(name: str, proposal: Proposal) -> str:
    patient = proposal.patient_id
    return {
        "tab": f"/clinic/patients/{patient}/decision-support/",
        "check": f"/clinic/patients/{patient}/decision-support/check/",
        "accept": f"/clinic/decision-support/{proposal.pk}/accept/",
        "dismiss": f"/clinic/decision-support/{proposal.pk}/dismiss/",
        "fragment": f"/clinic/decision-support/{proposal.pk}/",
    }[name]


@pytest.mark.parametrize("who", ["outsider", "patient", "billing_user", "admin_user"])
@pytest.mark.parametrize(("method", "name"), ENDPOINTS)
def test_others_get_404_and_the_refusal_is_audited(
    lab_proposal: Proposal,
    who: str,
    method: str,
    name: str,
    request: pytest.FixtureRequest,
) -> None:
    user: User = request.getfixturevalue(who)
    client: Client = client_for(user)
    data = {f"p{lab_proposal.pk}-reason": "Je refuse"}
    response = getattr(client, method)(
        url_of(name, lab_proposal), data if method == "post" else None
    )
    assert response.status_code == 404
    assert denials(user), f"{who} {name}: the refusal is not audited"
    lab_proposal.refresh_from_db()
    assert lab_proposal.status == Proposal.Status.OPEN
    assert not Task.objects.exists()


@pytest.mark.parametrize("who", ["patient", "billing_user", "admin_user"])
def test_the_clinic_list_is_for_clinicians(who: str, request: pytest.FixtureRequest) -> None:
    user: User = request.getfixturevalue(who)
    assert client_for(user).get("/clinic/decision-support/").status_code == 404
    assert denials(user)


def count(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_the_tab_makes_a_constant_number_of_queries(
    lab_proposal: Proposal,
    record: Patient,
    clinician: User,
    nurse: User,
    take: Callable[..., Any],
    allergic: Callable[..., Any],
    daily_readings: Callable[..., Any],
) -> None:
    client = client_for(nurse)
    do_dismiss_proposal(access_as(clinician, record), lab_proposal, "Prévu")
    client.get(tab(record))  # sessions and caches warmed
    few = count(client, tab(record))
    # more open proposals of every kind, and more decided ones
    take(record, "Lisinopril 10 mg cp", dosage="10 mg le matin")
    daily_readings(record, SYSTOLIC, HIGH_WEEK)
    take(record, "Warfarine 5 mg cp")
    take(record, "Ibuprofène 400 mg cp")
    allergic(record, "372665008")
    made = evaluate_patient(record, now=NOW)
    assert len(made) >= 3
    do_dismiss_proposal(access_as(clinician, record), made[-1], "Vu")
    assert count(client, tab(record)) == few


def test_the_clinic_list_makes_a_constant_number_of_queries(
    lab_proposal: Proposal,
    record2: Patient,
    clinician: User,
    take: Callable[..., Any],
) -> None:
    client = client_for(clinician)
    client.get("/clinic/decision-support/")
    few = count(client, "/clinic/decision-support/")
    take(record2, "Warfarine 5 mg cp")
    take(record2, "Ibuprofène 400 mg cp")
    take(record2, "Spironolactone 25 mg cp", started_on=TODAY - dt.timedelta(days=12))
    assert len(evaluate_patient(record2, now=NOW)) == 2
    assert count(client, "/clinic/decision-support/") == few


def test_readings_link_to_their_observation(
    bp_proposal: Proposal, record: Patient, nurse: User
) -> None:
    html = client_for(nurse).get(tab(record)).content.decode()
    first = bp_proposal.evidence["observations"][0]["id"]
    assert f'href="/clinic/observations/{first}/"' in html
    assert day(-1).date().strftime("%m/%d/%Y") in html  # shown in local time
