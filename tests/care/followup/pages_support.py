"""A follow-up scene for the page tests: a prescription being taken, a dose waiting for its
answer, a questionnaire waiting, a care plan."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.utils import timezone

from apps.accounts.models import User
from apps.care.models import (
    CarePlan,
    DoseReminder,
    Questionnaire,
    QuestionnaireRequest,
)
from apps.records.models import MedicationRequest, Patient


@dataclass
class Scene:
    line: MedicationRequest
    dose: DoseReminder
    request: QuestionnaireRequest
    plan: CarePlan


def add_dose(line: MedicationRequest, minutes_ago: int = 10, **fields: object) -> DoseReminder:
    """A dose reminded `minutes_ago` (what the beat job would have done at that time)."""
    moment = timezone.now().replace(second=0, microsecond=0) - dt.timedelta(minutes=minutes_ago)
    fields.setdefault("status", DoseReminder.Status.SENT)
    fields.setdefault("sent_at", moment)
    return DoseReminder.objects.create(
        patient_id=line.patient_id,
        line=line,
        scheduled_for=moment,
        local_time=moment.astimezone(dt.UTC).strftime("%H:%M"),
        send_at=moment,
        **fields,  # type: ignore[arg-type]
    )


def add_request(
    chart: Patient, questionnaire: Questionnaire, key: str, **fields: object
) -> QuestionnaireRequest:
    now = timezone.now()
    fields.setdefault("status", QuestionnaireRequest.Status.SENT)
    return QuestionnaireRequest.objects.create(
        patient=chart,
        questionnaire=questionnaire,
        key=key,
        due_at=now - dt.timedelta(hours=1),
        expires_at=now + dt.timedelta(days=2),
        sent_at=now - dt.timedelta(hours=1),
        **fields,  # type: ignore[arg-type]
    )


def build_scene(
    prescribe: Callable[..., MedicationRequest],
    record: Patient,
    coordinator: User,
    questionnaires: dict[str, Questionnaire],
) -> Scene:
    line = prescribe(timezone.now() - dt.timedelta(days=3), frequency=2, name="Bisoprolol 5 mg")
    plan = CarePlan.objects.create(
        patient=record, title="Suivi cardiologique", created_by=coordinator, coordinator=coordinator
    )
    return Scene(
        line=line,
        dose=add_dose(line),
        request=add_request(
            record,
            questionnaires["post-op-follow-up"],
            f"plan:{plan.pk}:post-op-follow-up:day1",
            plan=plan,
        ),
        plan=plan,
    )
