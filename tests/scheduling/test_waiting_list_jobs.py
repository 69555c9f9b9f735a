"""Waiting list: freed time goes to the first patient waiting; an offer not taken moves on."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import timezone

from apps.accounts.models import Role, User
from apps.notifications.models import Notification
from apps.records.models import Patient
from apps.scheduling.models import Appointment, AppointmentType, Schedule, WaitingListEntry
from apps.scheduling.services.booking import (
    access_for_booking,
    do_book_appointment,
    do_cancel_appointment,
)
from apps.scheduling.services.waiting_list import expire_offers
from apps.scheduling.tasks import expire_waiting_list_offers

from .conftest import ZURICH, next_weekday


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=ZURICH)


@pytest.fixture
def waiting(
    schedule: Schedule,
    consultation: AppointmentType,
    make_user: Callable[..., User],
    make_patient: Callable[..., Patient],
) -> list[WaitingListEntry]:
    """Two patients waiting for an earlier consultation, the first one first."""
    entries = []
    for i in range(2):
        user = make_user(Role.PATIENT, email=f"waiting{i}@example.test")
        entries.append(
            WaitingListEntry.objects.create(
                patient=make_patient(user),
                schedule=schedule,
                type=consultation,
                latest=timezone.now() + dt.timedelta(days=60),
                created_at=timezone.now() - dt.timedelta(hours=2 - i),
            )
        )
    return entries


def offered(entry: WaitingListEntry) -> bool:
    entry.refresh_from_db()
    return entry.status == WaitingListEntry.Status.OFFERED


def test_a_cancellation_is_offered_to_the_first_waiting_then_to_the_next(
    waiting: list[WaitingListEntry],
    consultation: AppointmentType,
    record: Patient,
    patient: User,
    clinician: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    first, second = waiting
    access = access_for_booking(patient, record.pk)
    appointment = do_book_appointment(access, consultation, at(next_weekday(0), 10), [clinician])

    # when: the patient cancels (the offer goes out after commit)
    with django_capture_on_commit_callbacks(execute=True):
        do_cancel_appointment(access, appointment)

    # then: the first patient waiting gets the time, for a while
    assert offered(first) and not offered(second)
    assert first.offered_start == appointment.starts_at
    assert first.offer_expires_at is not None and first.offer_expires_at > timezone.now()
    assert Notification.objects.filter(user=first.patient.user, kind="appointment").exists()
    assert expire_offers() == 0  # nothing expired yet

    # when: the offer runs out
    WaitingListEntry.objects.filter(pk=first.pk).update(
        offer_expires_at=timezone.now() - dt.timedelta(minutes=1)
    )
    assert expire_waiting_list_offers.delay().get() == 1

    # then: the next one gets the same time
    first.refresh_from_db()
    assert first.status == WaitingListEntry.Status.EXPIRED
    assert offered(second) and second.offered_start == appointment.starts_at
    assert Notification.objects.filter(user=second.patient.user, kind="appointment").exists()


def test_an_expired_offer_of_a_time_booked_meanwhile_goes_to_nobody(
    waiting: list[WaitingListEntry],
    consultation: AppointmentType,
    record: Patient,
    record2: Patient,
    patient: User,
    clinician: User,
    django_capture_on_commit_callbacks: Any,
) -> None:
    first, second = waiting
    access = access_for_booking(patient, record.pk)
    appointment = do_book_appointment(access, consultation, at(next_weekday(1), 9), [clinician])
    with django_capture_on_commit_callbacks(execute=True):
        do_cancel_appointment(access, appointment)
    assert offered(first)
    # someone else books the time
    do_book_appointment(
        access_for_booking(clinician, record2.pk), consultation, appointment.starts_at, [clinician]
    )
    WaitingListEntry.objects.filter(pk=first.pk).update(
        offer_expires_at=timezone.now() - dt.timedelta(minutes=1)
    )

    assert expire_offers() == 1

    assert not offered(second)
    assert second.status == WaitingListEntry.Status.WAITING
    assert Appointment.objects.filter(starts_at=appointment.starts_at, status="booked").count() == 1
