"""Demo multidisciplinary meetings (called by apps/care/demo.py; idempotent; through the
services, on the demo cast of the accounts and records demos):

- a breast tumour board held earlier today, chaired by the demo physician, where Marie
  Dubois's screening mammogram was discussed: the decision is signed, its PDF is in her
  record and its follow-up became care-plan activities and tasks for the nurse and the
  coordinator;
- next week's internal-medicine meeting with two cases prepared (Élise Rochat, Luca
  Bernasconi), their summaries built from their records.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from apps.accounts.models import Role, User
from apps.records.models import Patient

from .models import Meeting
from .services.meeting_decisions import do_record_decision, do_sign_decision
from .services.meetings import (
    do_add_case,
    do_close_meeting,
    do_record_attendance,
    do_schedule_meeting,
    do_start_meeting,
)

PAST_TITLE = "RCP de sénologie"
UPCOMING_TITLE = "Colloque pluridisciplinaire de médecine interne"


def seed(context: dict[str, Any]) -> None:
    users: dict[str, User] = context["users"]
    organization = context["organization"]
    physician = users["physician"]
    marie = Patient.objects.filter(user=users["patient"]).first()
    luca = Patient.objects.filter(user=users["patient2"]).first()
    elise = Patient.objects.filter(family_name="Rochat", given_names="Élise").first()
    team = [users["nurse"], users["coordinator"], users["physio"]]
    if marie is not None and not _exists(organization, PAST_TITLE):
        _past_board(physician, team, marie, users)
    cases = [patient for patient in (elise, luca) if patient is not None]
    if cases and not _exists(organization, UPCOMING_TITLE):
        _upcoming(physician, team, cases)


def _exists(organization: Any, title: str) -> bool:
    return Meeting.objects.filter(organization=organization, title=title).exists()


def _past_board(physician: User, team: list[User], marie: Patient, users: dict[str, User]) -> None:
    """Held this morning: scheduled to have started 50 minutes ago, then run to the end."""
    start = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(minutes=50)
    meeting = do_schedule_meeting(
        physician,
        title=PAST_TITLE,
        kind=Meeting.Kind.TUMOUR_BOARD,
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        participant_ids=[person.pk for person in team],
    )
    case = do_add_case(
        physician,
        meeting,
        marie.pk,
        "Mammographie de dépistage : micro-calcifications groupées ACR 4 du sein gauche. "
        "Biopsie stéréotaxique ou contrôle à 6 mois ?",
    )
    do_start_meeting(physician, meeting)
    do_record_attendance(
        physician, meeting, [physician.pk, users["nurse"].pk, users["coordinator"].pk]
    )
    do_record_decision(
        physician,
        case,
        "Biopsie stéréotaxique sous vide du sein gauche. Glycémie capillaire le matin du geste "
        "(diabète de type 2). Résultat histologique à présenter à la prochaine RCP.",
        [
            {
                "title": "Planifier la biopsie stéréotaxique du sein gauche",
                "kind": "exam",
                "assignee": users["coordinator"].pk,
                "role": "",
                "due_days": 10,
            },
            {
                "title": "Appeler Mme Dubois pour lui expliquer la décision",
                "kind": "call",
                "assignee": None,
                "role": Role.NURSE,
                "due_days": 2,
            },
        ],
    )
    do_sign_decision(physician, case)
    do_close_meeting(physician, meeting)


def _upcoming(physician: User, team: list[User], cases: list[Patient]) -> None:
    day = timezone.localdate() + dt.timedelta(days=7)
    start = timezone.make_aware(dt.datetime.combine(day, dt.time(13, 30)))
    meeting = do_schedule_meeting(
        physician,
        title=UPCOMING_TITLE,
        kind=Meeting.Kind.MULTIDISCIPLINARY,
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        participant_ids=[person.pk for person in team],
    )
    questions = {
        "Rochat": "Insuffisance cardiaque et insuffisance rénale chronique stade 3 : "
        "introduire un inhibiteur du SGLT2 ? Quel suivi de la fonction rénale ?",
        "Bernasconi": "BPCO et fibrillation auriculaire : réadaptation respiratoire en "
        "ambulatoire et réévaluation de l'anticoagulation ?",
    }
    for patient in cases:
        question = questions.get(patient.family_name, "Avis sur la suite de la prise en charge ?")
        do_add_case(physician, meeting, patient.pk, question)
