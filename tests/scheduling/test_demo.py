"""The scheduling demo data: agendas that fill the team agenda, seeded once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.scheduling.models import (
    Appointment,
    AppointmentType,
    AvailabilityException,
    AvailabilityRule,
    Location,
    Participant,
    Schedule,
)

MODELS = (
    Location,
    AppointmentType,
    Schedule,
    AvailabilityRule,
    AvailabilityException,
    Appointment,
    Participant,
)


def _counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


@pytest.mark.django_db
def test_seeding_twice_gives_the_same_agendas(settings: Any) -> None:
    settings.DEBUG = True

    with open("/dev/null", "w") as null:
        call_command("seed_demo", stdout=null)
        first = _counts()
        call_command("seed_demo", stdout=null)

    assert _counts() == first
    assert first["AppointmentType"] == 6
    assert first["Schedule"] == 3
    assert first["AvailabilityException"] == 1
    now = timezone.now()
    upcoming = Appointment.objects.filter(starts_at__gt=now, status="booked")
    assert upcoming.count() >= 6
    assert upcoming.filter(starts_at__lt=now + dt.timedelta(days=16)).count() >= 6
    joint = [a for a in upcoming if a.participants.count() == 2]
    assert len(joint) == 1 and joint[0].type.code == "joint-physician-nurse"
    past = set(Appointment.objects.filter(starts_at__lt=now).values_list("status", flat=True))
    assert past == {"fulfilled", "noshow"}
    assert not AppointmentType.objects.get(code="joint-physician-nurse").patient_bookable
