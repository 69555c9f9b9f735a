"""A care plan's next follow-up becomes a follow-up to book in scheduling (of the appointment
type `CARE_FOLLOW_UP_TYPE`), once: a request already covering the date is enough."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from apps.accounts.models import Role, User
from apps.care.models import Pathway
from apps.care.services.plans import do_create_plan, do_create_plan_from_pathway, do_set_follow_up
from apps.records.models import Patient
from apps.scheduling.models import AppointmentType, FollowUpRequest
from tests.care.conftest import access_as


def _video_follow_up() -> AppointmentType:
    return AppointmentType.objects.create(
        code="video-follow-up",
        name="Suivi vidéo",
        minutes=20,
        mode="video",
        professions=[Role.PHYSICIAN, Role.NURSE],
    )


def test_a_plan_from_a_pathway_asks_for_its_follow_up(
    heart_failure: Pathway, coordinator: User, record: Patient
) -> None:
    # given the hospital books follow-ups as video follow-ups
    kind = _video_follow_up()
    start = timezone.localdate()

    # when a heart-failure plan (follow-up every 30 days) starts today
    plan = do_create_plan_from_pathway(
        access_as(coordinator, record), heart_failure, start_date=start
    )

    # then a follow-up of that type is to be booked within 30 days, asked by the coordinator
    request = FollowUpRequest.objects.get(patient=record)
    assert request.type == kind
    assert request.due_by == start + dt.timedelta(days=30) == plan.next_follow_up
    assert request.requested_by == coordinator
    assert plan.title in request.note


def test_an_existing_request_by_that_date_is_enough_and_a_later_date_asks_again(
    coordinator: User, record: Patient
) -> None:
    _video_follow_up()
    access = access_as(coordinator, record)
    start = timezone.localdate()
    plan = do_create_plan(
        access,
        title="Suivi",
        description="",
        start_date=start,
        coordinator=coordinator,
        follow_up_days=14,
    )
    do_set_follow_up(access, plan, follow_up_days=14, next_follow_up=start + dt.timedelta(days=20))
    assert FollowUpRequest.objects.filter(patient=record).count() == 1  # the 14-day one covers it

    do_set_follow_up(access, plan, follow_up_days=14, next_follow_up=start + dt.timedelta(days=5))
    assert sorted(FollowUpRequest.objects.values_list("due_by", flat=True)) == [
        start + dt.timedelta(days=5),
        start + dt.timedelta(days=14),
    ]


def test_without_the_appointment_type_nothing_is_asked(coordinator: User, record: Patient) -> None:
    do_create_plan(
        access_as(coordinator, record),
        title="Suivi",
        description="",
        start_date=timezone.localdate(),
        coordinator=coordinator,
        follow_up_days=7,
    )
    assert not FollowUpRequest.objects.exists()
