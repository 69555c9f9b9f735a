"""The follow-up demo: Marie's preferences, two weeks of doses (about 85 % taken), answered
and waiting questionnaires (one flagged, with its review task), a satisfaction survey; twice
in a row changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts import demo as accounts_demo
from apps.care import demo_followup
from apps.care.models import (
    CarePreferences,
    DoseReminder,
    QuestionnaireRequest,
    QuestionnaireResponse,
    Task,
)
from apps.care.services.reminders import adherence
from apps.records import demo as records_demo
from apps.records.models import Encounter, Patient


@pytest.mark.django_db
def test_demo_follow_up_is_realistic_and_idempotent() -> None:
    context: dict[str, Any] = {"logins": []}
    accounts_demo.seed(context)
    records_demo.seed(context)
    marie = Patient.objects.get(user=context["users"]["patient"])
    ended = timezone.now() - dt.timedelta(days=2)
    Encounter.objects.create(
        patient=marie,
        status=Encounter.Status.FINISHED,
        kind=Encounter.Kind.VIRTUAL,
        practitioner=context["users"]["physician"],
        started_at=ended - dt.timedelta(minutes=25),
        ended_at=ended,
    )

    demo_followup.seed(context)
    counts = (
        DoseReminder.objects.count(),
        QuestionnaireRequest.objects.count(),
        QuestionnaireResponse.objects.count(),
        Task.objects.count(),
    )
    demo_followup.seed(context)

    assert counts == (
        DoseReminder.objects.count(),
        QuestionnaireRequest.objects.count(),
        QuestionnaireResponse.objects.count(),
        Task.objects.count(),
    )
    assert CarePreferences.objects.get(patient=marie).dose_times[1] == "12:30"
    result = adherence(marie, 14)
    # Three doses a day over the last 13 days, less those of the last 12 hours, which the demo
    # leaves for Marie to answer (near midnight, yesterday's evening doses): at least 12 days.
    assert result.counted >= 3 * 12
    assert result.percent is not None and 78 <= result.percent <= 92
    assert len(result.lines) == 2
    responses = QuestionnaireResponse.objects.filter(patient=marie)
    assert responses.filter(flagged=True).count() == 1
    assert responses.filter(questionnaire__code="satisfaction-consultation").count() == 1
    assert QuestionnaireRequest.objects.filter(patient=marie, status="sent").count() == 1
    assert Task.objects.filter(patient=marie, kind=Task.Kind.REVIEW_RESULTS).count() == 1
