"""Demo tasks for Marie Dubois's care team (seed_demo, after the plans; idempotent).

- an overdue call for the nurse, asked by the physician;
- a results review for the physician, asked by the nurse;
- a handover from the nurse to the physiotherapist;
- a dressing change done by the nurse, with her report.

Each is recognised by patient and title, so a second run changes nothing. They are about her
diabetes and a fall, not her heart-failure plan (whose own tasks come from demo_plans), so none
is tied to a plan.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from apps.accounts.models import User
from apps.records.access import get_patient_for_user
from apps.records.models import Patient

from .models import Task
from .services.tasks import do_add_task_note, do_complete_task, do_create_task

CALL = "Appeler Mme Dubois : tolérance de la metformine"
REVIEW = "Revoir l'HbA1c et le bilan lipidique du trimestre"
HANDOVER = "Transmission : reprise de la marche après la chute"
DRESSING = "Refaire le pansement de la plaie du pied gauche"


def seed(context: dict[str, Any]) -> None:
    users: dict[str, User] = context["users"]
    marie = Patient.objects.filter(user=users["patient"]).first()
    if marie is None:
        return  # the records demo makes the chart and its care team first
    physician, nurse, physio = users["physician"], users["nurse"], users["physio"]
    now = timezone.now()
    existing = set(Task.objects.filter(patient=marie).values_list("title", flat=True))

    def create(by: User, title: str, **fields: Any) -> Task | None:
        if title in existing:
            return None
        access = get_patient_for_user(by, marie.pk, action=None)
        return do_create_task(access, title=title, **fields)

    create(
        physician,
        CALL,
        kind=Task.Kind.CALL,
        instructions=(
            "Demander si les troubles digestifs persistent depuis l'augmentation de la dose. "
            "Si oui, proposer la prise au milieu du repas et me rappeler."
        ),
        assignee=nurse,
        priority=Task.Priority.URGENT,
        due_at=now - dt.timedelta(hours=3),
    )
    create(
        nurse,
        REVIEW,
        kind=Task.Kind.REVIEW_RESULTS,
        instructions="Résultats du laboratoire arrivés ce matin ; la patiente attend un appel.",
        assignee=physician,
        due_at=now + dt.timedelta(days=1),
    )
    handover = create(
        nurse,
        HANDOVER,
        kind=Task.Kind.HANDOVER,
        instructions=(
            "Chute sans gravité samedi à domicile. Marche avec canne, appréhension dans les "
            "escaliers. Merci d'évaluer l'équilibre et d'adapter les exercices."
        ),
        assignee=physio,
        due_at=now + dt.timedelta(days=2),
    )
    if handover is not None:
        do_add_task_note(
            get_patient_for_user(nurse, marie.pk, action=None),
            handover,
            "La fille de la patiente sera présente mardi après-midi.",
        )
    dressing = create(
        physician,
        DRESSING,
        kind=Task.Kind.WOUND_CARE,
        instructions="Pansement hydrocolloïde, contrôler l'absence de signes d'infection.",
        assignee=nurse,
        due_at=now + dt.timedelta(hours=6),
    )
    if dressing is not None:
        do_complete_task(
            get_patient_for_user(nurse, marie.pk, action=None),
            dressing,
            "Plaie propre, bords roses, pas d'écoulement. Pansement refait, prochain contrôle "
            "dans 3 jours.",
        )
