"""The demo conversations: made once through the services, dated back, visible to the right
people."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.demo import demo_email
from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.messaging.access import threads_for_user
from apps.messaging.demo import working_time
from apps.messaging.models import Attachment, Message, Participant, Thread, Topic
from apps.messaging.services import hours
from apps.messaging.services.attachments import open_attachment
from apps.messaging.services.threads import unread_thread_count
from apps.notifications.models import Notification


@pytest.fixture(autouse=True)
def _demo_settings(settings: Any, tmp_path: Path) -> None:
    settings.DEBUG = True
    settings.MEDIA_ROOT = tmp_path / "media"


def _seed() -> None:
    call_command("seed_demo", stdout=io.StringIO())


def _counts() -> tuple[int, ...]:
    return (
        Thread.objects.count(),
        Message.objects.count(),
        Attachment.objects.count(),
        Participant.objects.count(),
        Notification.objects.filter(kind="message").count(),
    )


def _user(handle: str) -> User:
    return User.objects.get(email=demo_email(handle))


@pytest.mark.django_db
def test_seeding_twice_makes_the_conversations_once() -> None:
    _seed()
    first = _counts()
    _seed()

    assert _counts() == first
    assert first[0] == 6
    # Made through the services: audited like any conversation.
    assert AuditEvent.objects.filter(object_type="messaging.thread", action="create").count() == 6


@pytest.mark.django_db
def test_the_demo_patient_has_a_wound_photo_an_answered_and_a_waiting_conversation() -> None:
    _seed()
    marie = _user("patient")

    threads = {thread.subject: thread for thread in threads_for_user(marie)}

    assert set(threads) == {
        "Plaie au pied droit",
        "Renouvellement de la metformine",
        "Contrôle de tension avant le rendez-vous",
    }
    wound = threads["Plaie au pied droit"]
    assert wound.topic == Topic.WOUND
    assert wound.assignee == _user("nurse")
    assert not wound.awaiting_team
    photo = Attachment.objects.get(message__thread=wound)
    assert photo.content_type == "image/jpeg"
    content = open_attachment(photo)
    assert content[:2] == b"\xff\xd8"
    assert b"PhoneCam" not in content  # the upload cleaning stripped the EXIF data
    renewal = threads["Renouvellement de la metformine"]
    assert renewal.state == Thread.State.RESOLVED
    assert renewal.resolved_at is not None and renewal.resolved_at > renewal.last_message_at
    waiting = threads["Contrôle de tension avant le rendez-vous"]
    assert waiting.awaiting_team
    assert waiting.assignee is None
    assert waiting.response_due_at is not None


@pytest.mark.django_db
def test_past_conversations_are_dated_back_in_order() -> None:
    _seed()
    now = timezone.now()

    for subject in ("Plaie au pied droit", "Renouvellement de la metformine"):
        thread = next(t for t in Thread.objects.all() if t.subject == subject)
        times = list(Message.objects.filter(thread=thread).values_list("sent_at", flat=True))
        assert times == sorted(times)
        # Within the team's real opening hours (not the "always open" the demo posts them in).
        assert all(hours.is_open(at) for at in times)
        assert times[-1] < now - dt.timedelta(hours=12)
        assert thread.created_at == times[0]
        assert thread.last_message_at == times[-1]
        # The patient read the team's last answer: nothing unread there for her.
        marker = Participant.objects.get(thread=thread, user=_user("patient"))
        assert marker.last_read_at is not None and marker.last_read_at >= times[-1]
        # Posted in (pretended) opening hours: no automatic reply dated today in the past.
        assert not Message.objects.filter(thread=thread, automatic=True).exists()


@pytest.mark.django_db
def test_the_triage_inbox_has_unassigned_and_urgent_conversations_of_another_patient() -> None:
    _seed()
    nurse = _user("nurse")
    luca = _user("patient2")

    luca_threads = list(Thread.objects.filter(patient__user=luca))

    assert len(luca_threads) == 2
    assert all(t.assignee is None and t.state == Thread.State.OPEN for t in luca_threads)
    assert [t.urgency for t in luca_threads].count(Thread.Urgency.URGENT) == 1
    visible = threads_for_user(nurse)
    assert set(visible.filter(patient__user=luca)) == set(luca_threads)
    assert unread_thread_count(nurse) >= 3


@pytest.mark.django_db
def test_the_case_discussion_is_staff_only_and_mentions_the_nurse() -> None:
    _seed()
    nurse, physician = _user("nurse"), _user("physician")

    case = Thread.objects.get(staff_only=True)

    assert case.topic == Topic.CASE
    assert case.patient.user is None  # Élise Rochat has no portal account
    first = Message.objects.filter(thread=case).first()
    assert first is not None and first.author == physician
    assert list(first.mentions.all()) == [nurse]
    assert case in threads_for_user(nurse)
    assert not threads_for_user(_user("patient")).filter(staff_only=True).exists()
    assert Notification.objects.filter(
        user=nurse, ref=f"messaging.thread:{case.pk}", kind="message"
    ).exists()


def test_working_time_steps_back_over_closed_days(settings: Any) -> None:
    settings.MESSAGING_OPENING_HOURS = (frozenset({1, 2, 3, 4, 5}), *_hours())

    one, two = working_time(1, 9, 0), working_time(2, 9, 0)

    today = timezone.localdate()
    assert two < one < timezone.now()
    assert timezone.localtime(one).date() < today
    assert timezone.localtime(one).isoweekday() <= 5
    assert timezone.localtime(two).isoweekday() <= 5


def _hours() -> tuple[dt.time, dt.time]:
    return dt.time(8), dt.time(18)
