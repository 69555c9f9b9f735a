"""Conversations in the patient timeline: one entry per thread, under the messaging access rule
(the patient never sees a staff-only discussion; an emergency access or an outsider sees none)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Thread, Topic
from apps.messaging.services.threads import (
    do_post_message,
)
from apps.messaging.services.triage import (
    do_set_urgency,
)
from apps.records.access import get_patient_for_user
from apps.records.models import BreakGlassAccess, Patient
from apps.records.timeline import Entry, timeline_page
from tests.conftest import signed_in_client, verified_client

PATIENT_SUBJECT = "Douleur au genou droit"
STAFF_SUBJECT = "Discussion interne: reprise du traitement"


@pytest.fixture(autouse=True)
def _setup(settings: Any) -> Iterator[None]:
    settings.MESSAGING_OPENING_HOURS = (frozenset(range(1, 8)), dt.time(0), dt.time(23, 59, 59))
    with translation.override("en"):
        yield


@pytest.fixture
def threads(
    make_thread: Callable[..., Thread], clinician: User, colleague: User
) -> tuple[Thread, Thread]:
    """A patient conversation (answered, urgent) and a staff-only discussion."""
    asked = make_thread(topic=Topic.SYMPTOM, subject=PATIENT_SUBJECT)
    do_post_message(ThreadAccess(asked, clinician), body="Venez demain matin.")
    do_set_urgency(ThreadAccess(asked, clinician), "urgent")
    staff = make_thread(colleague, topic=Topic.HANDOVER, subject=STAFF_SUBJECT, body="Pour demain")
    return asked, staff


def conversations(user: User, record: Patient) -> list[Entry]:
    _page, entries = timeline_page(get_patient_for_user(user, record.pk))
    return [entry for entry in entries if entry.kind == "conversation"]


def test_the_patient_sees_their_conversation_but_not_the_staff_discussion(
    threads: tuple[Thread, Thread], record: Patient, patient: User
) -> None:
    asked, _staff = threads

    (entry,) = conversations(patient, record)

    assert entry.title == PATIENT_SUBJECT
    assert entry.at == Thread.objects.get(pk=asked.pk).last_message_at
    assert entry.detail == "Symptom · 2 messages · urgent"
    assert entry.url == reverse("messaging:thread", args=[asked.pk])
    page = signed_in_client(patient).get(reverse("records:my_timeline"))
    assert page.status_code == 200
    content = page.content.decode()
    assert PATIENT_SUBJECT in content and STAFF_SUBJECT not in content


def test_the_care_team_sees_both_with_links_to_the_clinic(
    threads: tuple[Thread, Thread], record: Patient, clinician: User
) -> None:
    asked, staff = threads

    entries = conversations(clinician, record)

    assert [e.title for e in entries] == [STAFF_SUBJECT, PATIENT_SUBJECT]  # newest first
    assert entries[0].detail == "Handover · 1 message · staff only"
    assert entries[0].url == reverse("messaging:clinic_thread", args=[staff.pk])
    assert entries[1].url == reverse("messaging:clinic_thread", args=[asked.pk])
    page = verified_client(clinician).get(reverse("records:timeline", args=[record.pk]))
    assert page.status_code == 200 and STAFF_SUBJECT in page.content.decode()


def test_the_timeline_can_show_conversations_only(
    threads: tuple[Thread, Thread], record: Patient, clinician: User
) -> None:
    _page, entries = timeline_page(
        get_patient_for_user(clinician, record.pk), kinds_wanted=["conversation"]
    )
    assert {e.kind for e in entries} == {"conversation"} and len(entries) == 2


def test_an_outsider_is_denied_the_timeline_and_the_denial_is_audited(
    threads: tuple[Thread, Thread], record: Patient, outsider: User
) -> None:
    response = verified_client(outsider).get(reverse("records:timeline", args=[record.pk]))

    assert response.status_code == 404
    denial = AuditEvent.objects.order_by("-seq").first()
    assert denial is not None
    assert (denial.action, denial.actor_id) == ("denied", outsider.pk)
    assert denial.patient_id == str(record.pk)


def test_another_patient_does_not_see_them(
    threads: tuple[Thread, Thread], record2: Patient, patient2: User
) -> None:
    assert conversations(patient2, record2) == []
    content = signed_in_client(patient2).get(reverse("records:my_timeline")).content.decode()
    assert PATIENT_SUBJECT not in content and STAFF_SUBJECT not in content


def test_an_emergency_access_shows_the_record_without_the_conversations(
    threads: tuple[Thread, Thread], record: Patient, outsider: User
) -> None:
    BreakGlassAccess.objects.create(
        user=outsider,
        patient=record,
        reason="Patient inconscient aux urgences.",
        expires_at=timezone.now() + dt.timedelta(hours=1),
    )
    assert conversations(outsider, record) == []
    page = verified_client(outsider).get(reverse("records:timeline", args=[record.pk]))
    assert page.status_code == 200
    assert PATIENT_SUBJECT not in page.content.decode()


def test_a_timeline_page_costs_the_same_with_more_conversations(
    threads: tuple[Thread, Thread],
    make_thread: Callable[..., Thread],
    record: Patient,
    clinician: User,
) -> None:
    access = get_patient_for_user(clinician, record.pk)
    with CaptureQueriesContext(connection) as two:
        timeline_page(access, kinds_wanted=["conversation"])
    for n in range(4):
        make_thread(subject=f"Question {n}")
    with CaptureQueriesContext(connection) as six:
        _page, entries = timeline_page(access, kinds_wanted=["conversation"])
    assert len(entries) == 6
    assert len(six) <= len(two)
