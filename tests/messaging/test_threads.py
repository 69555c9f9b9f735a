"""The core conversation services: start, post, read, triage, unread counts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Message, Participant, Thread, Topic
from apps.messaging.services import MessagingError
from apps.messaging.services.threads import (
    do_mark_read,
    do_post_message,
    do_start_thread,
    unread_thread_count,
)
from apps.messaging.services.triage import (
    do_assign,
    do_resolve,
)
from apps.records.models import Patient


@pytest.fixture(autouse=True)
def _always_open(settings) -> None:  # type: ignore[no-untyped-def]
    settings.MESSAGING_OPENING_HOURS = (frozenset(range(1, 8)), *_all_day())


def _all_day():  # type: ignore[no-untyped-def]
    import datetime as dt

    return dt.time(0, 0), dt.time(23, 59, 59)


def test_a_patient_starts_a_conversation_with_their_care_team(
    make_thread: Callable[..., Thread], record: Patient, clinician: User, colleague: User
) -> None:
    thread = make_thread()

    assert thread.patient == record
    assert not thread.staff_only
    assert thread.awaiting_team
    assert thread.response_due_at is not None
    assert Message.objects.get(thread=thread).body.startswith("Bonjour")
    assert unread_thread_count(clinician) == 1
    assert unread_thread_count(colleague) == 1
    assert AuditEvent.objects.filter(object_type="messaging.message", action="create").exists()


def test_the_team_answer_ends_the_wait_and_is_unread_for_the_patient(
    make_thread: Callable[..., Thread], patient: User, clinician: User
) -> None:
    thread = make_thread()

    do_post_message(ThreadAccess(thread, clinician), body="Oui, le soir convient.")

    thread.refresh_from_db()
    assert not thread.awaiting_team
    assert thread.response_due_at is None
    assert unread_thread_count(patient) == 1
    assert unread_thread_count(clinician) == 0
    do_mark_read(ThreadAccess(thread, patient))
    assert unread_thread_count(patient) == 0


def test_a_patient_message_reopens_a_resolved_thread(
    make_thread: Callable[..., Thread], patient: User, clinician: User
) -> None:
    thread = make_thread()
    do_resolve(ThreadAccess(thread, clinician))
    assert thread.state == Thread.State.RESOLVED

    do_post_message(ThreadAccess(thread, patient), body="Encore une question.")

    thread.refresh_from_db()
    assert thread.state == Thread.State.OPEN
    assert thread.resolved_at is None


def test_only_the_team_triages(make_thread: Callable[..., Thread], patient: User) -> None:
    thread = make_thread()
    with pytest.raises(MessagingError):
        do_resolve(ThreadAccess(thread, patient))


def test_assigning_needs_a_care_team_clinician(
    make_thread: Callable[..., Thread], clinician: User, colleague: User, outsider: User
) -> None:
    thread = make_thread()
    with pytest.raises(MessagingError):
        do_assign(ThreadAccess(thread, clinician), outsider.pk)

    do_assign(ThreadAccess(thread, clinician), colleague.pk)

    thread.refresh_from_db()
    assert thread.assignee == colleague
    assert Participant.objects.filter(thread=thread, user=colleague).exists()


def test_a_staff_discussion_is_staff_only(
    make_thread: Callable[..., Thread], clinician: User, patient: User
) -> None:
    thread = make_thread(clinician, topic=Topic.CASE, subject="Plaie", body="Avis ?")

    assert thread.staff_only
    assert unread_thread_count(patient) == 0


def test_a_patient_cannot_open_a_staff_topic(patient: User, record: Patient) -> None:
    with pytest.raises(MessagingError):
        do_start_thread(patient, topic=Topic.CASE, subject="x", body="y")


def test_an_outsider_cannot_start_a_thread_about_the_patient(
    outsider: User, record: Patient
) -> None:
    from django.http import Http404

    with pytest.raises(Http404):
        do_start_thread(outsider, topic=Topic.CASE, subject="x", body="y", patient_id=record.pk)
    assert AuditEvent.objects.filter(actor_id=outsider.pk, action="denied").exists()
