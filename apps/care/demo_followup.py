"""Demo follow-up (seed_demo, through apps/care/demo.py; idempotent), for Marie Dubois:

- her reminder preferences (Zurich, doses at 08:00 / 12:30 / 19:00 / 22:00, quiet 22:30–07:00);
- a prescription being taken (metformin twice a day, lisinopril once), signed two weeks ago,
  with two weeks of answered doses (about 85 % taken, a few skipped or missed) and today's
  reminders sent;
- heart-failure questionnaires of her care plan: day 7 answered, day 14 answered with a weight
  gain that flags it (the review task for the nurses follows), day 21 waiting;
- a satisfaction survey answered after her last video consultation.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from django.utils import timezone

from apps.accounts.models import User
from apps.records.access import PatientAccess, get_patient_for_user
from apps.records.models import (
    Encounter,
    Medication,
    MedicationStatement,
    Patient,
    Prescription,
)

from .models import CarePlan, DoseReminder, Questionnaire, QuestionnaireRequest
from .models.plans import OPEN_PLAN_STATUSES
from .services.questionnaires import (
    do_answer_questionnaire,
    load_reference_questionnaires,
    survey_for,
)
from .services.reminders import (
    do_answer_dose,
    do_save_preferences,
    mark_missed,
    plan_doses,
    send_due_reminders,
)

HISTORY_DAYS = 14
SKIP_REASONS = ["Oublié à la maison", "Nausées ce matin", "Déjà pris plus tôt", ""]
CALM_HF = {
    "breathlessness": "stairs",
    "orthopnea": "no",
    "ankle-swelling": "same",
    "weight-gain": "0.5",
    "night-cough": "no",
    "fatigue": "4",
}
WORRYING_HF = {
    "breathlessness": "walking",
    "orthopnea": "yes",
    "ankle-swelling": "more",
    "weight-gain": "2.4",
    "night-cough": "yes",
    "fatigue": "7",
    "comment": "Je dors mal, je dois mettre deux oreillers.",
}
SURVEY = {
    "overall": "4",
    "video-quality": "fair",
    "recommend": "9",
    "comment": "Très à l'écoute, l'image a coupé deux fois.",
}


def seed(context: dict[str, Any]) -> None:
    users: dict[str, User] = context["users"]
    marie_user = users["patient"]
    marie = Patient.objects.filter(user=marie_user).first()
    if marie is None:
        return
    load_reference_questionnaires()
    access = get_patient_for_user(marie_user, marie.pk, action=None)
    now = timezone.now()
    _preferences(access, now)
    prescription = _prescription(marie, users["physician"], now)
    if prescription is not None:
        _dose_history(marie_user, prescription, now)
    _questionnaires(marie, marie_user, now)
    _survey(marie, marie_user, now)


def _preferences(access: PatientAccess, now: dt.datetime) -> None:
    if hasattr(access.patient, "care_preferences"):
        return
    do_save_preferences(
        access,
        time_zone="Europe/Zurich",
        dose_times=["08:00", "12:30", "19:00", "22:00"],
        quiet_start=dt.time(22, 30),
        quiet_end=dt.time(7, 0),
        medication_reminders=True,
        now=now,
    )


def _prescription(marie: Patient, physician: User, now: dt.datetime) -> Prescription | None:
    """Her regular treatment, signed through the records service, then dated two weeks back
    (the service signs "now"; the demo needs a history)."""
    existing = (
        Prescription.objects.filter(
            patient=marie, status=Prescription.Status.ACTIVE, items__as_needed=False
        )
        .order_by("-signed_at")
        .first()
    )
    if existing is not None:
        return existing
    from apps.records.services.prescriptions import do_sign_prescription

    metformin = Medication.objects.filter(atc_code="A10BA02").first()
    lisinopril = Medication.objects.filter(atc_code="C09AA03").first()
    if metformin is None or lisinopril is None:
        return None
    access = get_patient_for_user(physician, marie.pk, action=None)
    prescription = do_sign_prescription(
        access,
        physician,
        [
            {
                "medication": metformin,
                "dose": "1 comprimé",
                "route": "oral",
                "frequency": 2,
                "duration_days": 90,
                "quantity": 2,
                "instructions": "Pendant les repas.",
            },
            {
                "medication": lisinopril,
                "dose": "1 comprimé",
                "route": "oral",
                "frequency": 1,
                "duration_days": 90,
                "quantity": 1,
                "instructions": "Le matin.",
            },
        ],
        override_reason="Traitement de fond connu, revu avec la patiente.",
    )
    signed = now - dt.timedelta(days=HISTORY_DAYS, hours=2)
    Prescription.objects.filter(pk=prescription.pk).update(
        signed_at=signed, valid_until=timezone.localdate(signed) + dt.timedelta(days=90)
    )
    # The treatment the signing recorded started then too (decision support reads it).
    MedicationStatement.objects.filter(prescription=prescription).update(
        started_on=timezone.localdate(signed)
    )
    prescription.refresh_from_db()
    return prescription


def _dose_history(marie_user: User, prescription: Prescription, now: dt.datetime) -> None:
    doses = DoseReminder.objects.filter(line__prescription=prescription)
    if doses.filter(scheduled_for__lt=now - dt.timedelta(days=2)).exists():
        return
    assert prescription.signed_at is not None  # noqa: S101 - an active prescription is signed
    moment = prescription.signed_at
    while moment < now:
        plan_doses(moment)
        moment += dt.timedelta(hours=24)
    plan_doses(now)
    rng = random.Random(1958)  # noqa: S311 - synthetic demo data, not security
    past = doses.filter(
        scheduled_for__lt=now - dt.timedelta(hours=12), status=DoseReminder.Status.PLANNED
    ).order_by("scheduled_for")
    for dose in past:
        draw = rng.random()
        if draw < 0.86:
            minutes = rng.randint(-20, 75)
            do_answer_dose(
                marie_user, dose, True, now=dose.scheduled_for + dt.timedelta(minutes=minutes)
            )
        elif draw < 0.93:
            do_answer_dose(
                marie_user,
                dose,
                False,
                rng.choice(SKIP_REASONS),
                now=dose.scheduled_for + dt.timedelta(minutes=rng.randint(5, 120)),
            )
    mark_missed(now)
    send_due_reminders(now)


def _sent(
    marie: Patient,
    questionnaire: Questionnaire,
    key: str,
    due_at: dt.datetime,
    *,
    plan: CarePlan | None = None,
    encounter: Encounter | None = None,
) -> QuestionnaireRequest:
    request_obj, _created = QuestionnaireRequest.objects.get_or_create(
        key=key,
        defaults={
            "patient": marie,
            "questionnaire": questionnaire,
            "plan": plan,
            "encounter": encounter,
            "due_at": due_at,
            "expires_at": due_at + dt.timedelta(days=questionnaire.answer_within_days),
            "status": QuestionnaireRequest.Status.SENT,
            "sent_at": due_at,
        },
    )
    return request_obj


def _answer(
    user: User, request_obj: QuestionnaireRequest, data: dict[str, str], delay_hours: int
) -> None:
    if request_obj.status == QuestionnaireRequest.Status.SENT:
        do_answer_questionnaire(
            user, request_obj, data, now=request_obj.due_at + dt.timedelta(hours=delay_hours)
        )


def _questionnaires(marie: Patient, marie_user: User, now: dt.datetime) -> None:
    questionnaire = Questionnaire.objects.filter(code="heart-failure-symptoms").first()
    if questionnaire is None:
        return
    plan = (
        CarePlan.objects.filter(
            patient=marie, status__in=OPEN_PLAN_STATUSES, pathway__code="heart-failure"
        )
        .order_by("pk")
        .first()
    )
    today = timezone.localdate(now)
    start = plan.start_date if plan is not None else today - dt.timedelta(days=21)
    prefix = f"plan:{plan.pk}" if plan is not None else f"demo:{marie.pk}"

    def due(day: int) -> dt.datetime:
        moment = dt.datetime.combine(start + dt.timedelta(days=day), dt.time(10, 0))
        return timezone.make_aware(moment)

    for day, data in ((7, CALM_HF), (14, WORRYING_HF)):
        request_obj = _sent(
            marie, questionnaire, f"{prefix}:heart-failure-symptoms:day{day}", due(day), plan=plan
        )
        _answer(marie_user, request_obj, data, delay_hours=3)
    # The one waiting: sent this morning (or now, when the demo runs before ten).
    _sent(
        marie,
        questionnaire,
        f"{prefix}:heart-failure-symptoms:day21",
        min(due(21), now),
        plan=plan,
    )


def _survey(marie: Patient, marie_user: User, now: dt.datetime) -> None:
    encounter = (
        Encounter.objects.filter(
            patient=marie,
            status=Encounter.Status.FINISHED,
            ended_at__isnull=False,
            ended_at__lt=now - dt.timedelta(hours=3),
        )
        .order_by("-ended_at")
        .first()
    )
    survey = survey_for(marie.pk)
    if encounter is None or encounter.ended_at is None or survey is None:
        return
    request_obj = _sent(
        marie,
        survey,
        f"encounter:{encounter.pk}:{survey.code}",
        encounter.ended_at + dt.timedelta(hours=2),
        encounter=encounter,
    )
    _answer(marie_user, request_obj, SURVEY, delay_hours=1)
