"""Scheduling cast: appointment types, the clinician's weekly agenda, a nurse's, a location."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from apps.accounts.models import Organization, Role, User
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.scheduling.models import AppointmentType, AvailabilityRule, Location, Schedule
from apps.scheduling.services.slots import clinic_zone

# The record cast (patients, care team) serves the scheduling tests too.
from tests.records.conftest import *  # noqa: E402, F403

ZURICH = clinic_zone()


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    """An instant given in Zurich wall-clock time."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=ZURICH)


def next_weekday(weekday: int, weeks_ahead: int = 1) -> dt.date:
    """A date of that weekday at least a week ahead (so online booking is open)."""
    today = dt.datetime.now(ZURICH).date()
    return today + dt.timedelta(days=(weekday - today.weekday()) % 7 + 7 * weeks_ahead)


@pytest.fixture
def location(organization: Organization) -> Location:
    return Location.objects.create(organization=organization, name="Policlinique, salle 3")


@pytest.fixture
def consultation(db: None) -> AppointmentType:
    return AppointmentType.objects.create(
        code="follow-up",
        name="Consultation de suivi",
        name_en="Follow-up visit",
        minutes=30,
        mode="in_person",
        professions=[Role.PHYSICIAN],
    )


@pytest.fixture
def video_visit(db: None) -> AppointmentType:
    return AppointmentType.objects.create(
        code="video-follow-up",
        name="Téléconsultation",
        name_en="Video visit",
        minutes=20,
        mode="video",
        professions=[Role.PHYSICIAN, Role.NURSE],
    )


@pytest.fixture
def joint_visit(db: None) -> AppointmentType:
    return AppointmentType.objects.create(
        code="joint",
        name="Consultation conjointe",
        name_en="Joint visit",
        minutes=45,
        mode="in_person",
        professions=[Role.PHYSICIAN, Role.NURSE],
        patient_bookable=False,
    )


@pytest.fixture
def make_schedule(location: Location) -> Callable[..., Schedule]:
    def make(user: User, *types: AppointmentType, **rule: Any) -> Schedule:
        schedule, _ = Schedule.objects.get_or_create(
            clinician=user, defaults={"specialty": "Médecine interne"}
        )
        schedule.appointment_types.add(*types)
        valid_from = dt.date(2020, 1, 1)
        for weekday in range(5):
            AvailabilityRule.objects.create(
                schedule=schedule,
                weekday=weekday,
                starts=dt.time(8),
                ends=dt.time(12),
                mode="in_person",
                location=location,
                valid_from=valid_from,
            )
            AvailabilityRule.objects.create(
                schedule=schedule,
                weekday=weekday,
                starts=dt.time(14),
                ends=dt.time(16),
                mode="video",
                valid_from=valid_from,
            )
        return schedule

    return make


@pytest.fixture
def schedule(
    make_schedule: Callable[..., Schedule],
    clinician: User,
    consultation: AppointmentType,
    video_visit: AppointmentType,
    joint_visit: AppointmentType,
) -> Schedule:
    return make_schedule(clinician, consultation, video_visit, joint_visit)


@pytest.fixture
def nurse(make_user: Callable[..., User], organization: Organization, record: Patient) -> User:
    user = make_user(Role.NURSE, email="nurse@example.test", organization=organization)
    do_add_member(default_team(record), user)
    return user


@pytest.fixture
def nurse_schedule(
    make_schedule: Callable[..., Schedule],
    nurse: User,
    video_visit: AppointmentType,
    joint_visit: AppointmentType,
) -> Schedule:
    return make_schedule(nurse, video_visit, joint_visit)
