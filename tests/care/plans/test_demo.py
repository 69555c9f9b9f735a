"""The demo plans: Marie Dubois three weeks into the heart-failure pathway, Luca Bernasconi
on COPD; made through the services, set back in time, and made once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts import demo as accounts_demo
from apps.accounts.demo import demo_email
from apps.accounts.models import User
from apps.care import demo_plans
from apps.care.models import Activity, CarePlan, Task
from apps.care.reference import load_care_reference
from apps.devices.models import ThresholdRule
from apps.records import demo as records_demo
from apps.records.models import Patient


def _seed() -> dict[str, Any]:
    context: dict[str, Any] = {"logins": []}
    accounts_demo.seed(context)
    records_demo.seed(context)
    load_care_reference()
    demo_plans.seed(context)
    return context


def _counts() -> tuple[int, ...]:
    return (
        CarePlan.objects.count(),
        Activity.objects.count(),
        Task.objects.count(),
        ThresholdRule.objects.count(),
        Task.objects.filter(status="completed").count(),
    )


@pytest.mark.django_db
def test_the_demo_plans_are_made_once() -> None:
    _seed()
    today = timezone.localdate()
    marie = Patient.objects.get(user__email=demo_email("patient"))
    plan = CarePlan.objects.get(patient=marie, pathway__code="heart-failure")
    assert plan.start_date == today - dt.timedelta(days=21)
    assert plan.coordinator == User.objects.get(email=demo_email("coordinator"))

    call = plan.activities.get(repeat_days=7)
    assert call.due_date == today  # made on days 7 and 14, the third is due today
    calls = Task.objects.filter(activity=call).order_by("pk")
    assert [t.status for t in calls] == ["completed", "completed", "requested"]
    assert calls[0].completed_at is not None
    assert calls[0].completed_at.date() <= plan.start_date + dt.timedelta(days=7)
    assert plan.activities.get(kind="education").status == Activity.Status.COMPLETED
    assert plan.activities.get(kind="medication").status == Activity.Status.COMPLETED
    blood = Task.objects.get(activity__plan=plan, kind=Task.Kind.EXAM)
    assert blood.is_overdue()
    assert ThresholdRule.objects.filter(patient=marie, template="pathway:heart-failure").exists()

    luca = Patient.objects.get(user__email=demo_email("patient2"))
    copd = CarePlan.objects.get(patient=luca, pathway__code="copd")
    assert copd.activities.filter(kind="education", status="completed").count() == 1

    before = _counts()
    _seed()
    assert _counts() == before
