"""The care team's triage: assign (and unassign), urgency, resolve and reopen — each audited,
each pushed live to everyone who can see the conversation; patients may do none of it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.core.realtime import EVENT_TYPES, user_group
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Participant, Thread, Topic
from apps.messaging.services import MessagingError, threads, triage
from apps.messaging.services.threads import (
    do_post_message,
    unread_thread_count,
)
from apps.messaging.services.triage import (
    do_assign,
    do_reopen,
    do_resolve,
    do_set_urgency,
)
from apps.notifications.models import Notification

Event = tuple[str, dict[str, Any], list[str]]


@pytest.fixture(autouse=True)
def _always_open(settings: Any) -> None:
    settings.MESSAGING_OPENING_HOURS = (
        frozenset(range(1, 8)),
        dt.time(0, 0),
        dt.time(23, 59, 59, 999999),
    )


@pytest.fixture
def thread(make_thread: Callable[..., Thread]) -> Thread:
    return make_thread()


@pytest.fixture
def pushed(monkeypatch: pytest.MonkeyPatch) -> list[Event]:
    """The live events the services hand over for after the commit (still validated)."""
    events: list[Event] = []
    real = threads.send_events_on_commit

    def record(batch: Any) -> None:
        batch = [(kind, payload, list(groups)) for kind, payload, groups in batch]
        events.extend(batch)
        real(batch)

    monkeypatch.setattr(threads, "send_events_on_commit", record)
    monkeypatch.setattr(triage, "send_events_on_commit", record)
    return events


def team(who: User, thread: Thread) -> ThreadAccess:
    return ThreadAccess(thread, who)


def changes(thread: Thread) -> list[AuditEvent]:
    return list(
        AuditEvent.objects.filter(
            action=Action.UPDATE, object_type="messaging.thread", object_id=str(thread.pk)
        ).order_by("seq")
    )


def thread_events(events: list[Event]) -> dict[str, dict[str, Any]]:
    """The `messaging.thread` payloads by user group."""
    found = {}
    for kind, payload, groups in events:
        if kind == "messaging.thread":
            assert set(payload) == EVENT_TYPES[kind]
            [group] = groups
            found[group] = payload
    return found


def test_assigning_a_colleague(
    thread: Thread,
    patient: User,
    clinician: User,
    colleague: User,
    pushed: list[Event],
) -> None:
    do_assign(team(clinician, thread), colleague.pk)

    thread.refresh_from_db()
    assert thread.assignee == colleague
    assert Participant.objects.filter(thread=thread, user=colleague).exists()
    [audited] = changes(thread)
    assert audited.actor_id == clinician.pk
    assert audited.patient_id == str(thread.patient_id)
    assert audited.detail == {
        "thread": thread.pk,
        "side": "team",
        "what": "assign",
        "assignee": colleague.pk,
    }
    # everyone who sees the thread hears of it, in their own inbox's terms
    events = thread_events(pushed)
    assert set(events) == {user_group(u.pk) for u in (patient, clinician, colleague)}
    assert {e["assignee_id"] for e in events.values()} == {colleague.pk}
    assert events[user_group(patient.pk)]["url"] == f"/messages/{thread.pk}/"
    assert events[user_group(colleague.pk)]["url"] == f"/clinic/messages/{thread.pk}/"
    unread = [groups for kind, _p, groups in pushed if kind == "messaging.unread"]
    assert len(unread) == 3
    # the assignee is told (no clinical content)
    [told] = Notification.objects.filter(user=colleague)
    assert (told.kind, told.body, told.link) == ("message", "", f"/clinic/messages/{thread.pk}/")


def test_taking_a_conversation_oneself_notifies_nobody(
    thread: Thread, clinician: User, colleague: User
) -> None:
    before = Notification.objects.filter(user=clinician).count()

    do_assign(team(colleague, thread), colleague.pk)
    do_assign(team(clinician, thread), clinician.pk)

    assert Notification.objects.filter(user=colleague).count() == 0
    assert Notification.objects.filter(user=clinician).count() == before


def test_unassigning(thread: Thread, clinician: User, colleague: User, pushed: list[Event]) -> None:
    do_assign(team(clinician, thread), colleague.pk)
    pushed.clear()

    do_assign(team(colleague, thread), None)

    thread.refresh_from_db()
    assert thread.assignee is None
    assert changes(thread)[-1].detail["assignee"] is None
    assert {e["assignee_id"] for e in thread_events(pushed).values()} == {None}


def test_assigning_again_the_same_person_changes_nothing(
    thread: Thread, clinician: User, colleague: User, pushed: list[Event]
) -> None:
    do_assign(team(clinician, thread), colleague.pk)
    pushed.clear()

    do_assign(team(clinician, thread), str(colleague.pk))

    assert len(changes(thread)) == 1
    assert pushed == []


@pytest.mark.parametrize("assignee", ["outsider", "patient", "billing_user", "nobody", "junk"])
def test_only_a_clinician_of_the_care_team_can_be_assigned(
    assignee: str, thread: Thread, clinician: User, request: pytest.FixtureRequest
) -> None:
    value: Any = {"nobody": 999_999, "junk": "12; DROP"}.get(assignee)
    if value is None:
        value = request.getfixturevalue(assignee).pk

    with pytest.raises(MessagingError):
        do_assign(team(clinician, thread), value)

    thread.refresh_from_db()
    assert thread.assignee is None
    assert changes(thread) == []


def test_marking_urgent_is_pushed_without_recounting_unread(
    thread: Thread, clinician: User, pushed: list[Event]
) -> None:
    do_set_urgency(team(clinician, thread), Thread.Urgency.URGENT)

    thread.refresh_from_db()
    assert thread.urgency == "urgent"
    assert changes(thread)[-1].detail["urgency"] == "urgent"
    assert {e["urgency"] for e in thread_events(pushed).values()} == {"urgent"}
    assert [kind for kind, _p, _g in pushed if kind == "messaging.unread"] == []

    do_set_urgency(team(clinician, thread), Thread.Urgency.ROUTINE)
    thread.refresh_from_db()
    assert thread.urgency == "routine"
    assert len(changes(thread)) == 2


def test_an_unknown_urgency_is_refused(thread: Thread, clinician: User) -> None:
    with pytest.raises(MessagingError):
        do_set_urgency(team(clinician, thread), "critical")

    thread.refresh_from_db()
    assert thread.urgency == "routine"


def test_resolving_and_reopening(
    thread: Thread, clinician: User, colleague: User, pushed: list[Event]
) -> None:
    assert unread_thread_count(colleague) == 1

    do_resolve(team(clinician, thread))

    thread.refresh_from_db()
    assert thread.state == "resolved"
    assert thread.resolved_by == clinician and thread.resolved_at is not None
    assert thread.response_due_at is None  # nothing awaited any more
    assert unread_thread_count(colleague) == 0  # the team has nothing more to do
    assert {e["state"] for e in thread_events(pushed).values()} == {"resolved"}
    assert changes(thread)[-1].detail["what"] == "resolve"
    do_resolve(team(colleague, thread))  # again: nothing changes
    assert len(changes(thread)) == 1

    pushed.clear()
    do_reopen(team(colleague, thread))

    thread.refresh_from_db()
    assert (thread.state, thread.resolved_at, thread.resolved_by) == ("open", None, None)
    assert {e["state"] for e in thread_events(pushed).values()} == {"open"}
    assert [a.detail["what"] for a in changes(thread)] == ["resolve", "reopen"]
    assert changes(thread)[-1].actor_id == colleague.pk


def test_a_patients_new_message_reopens_a_resolved_conversation(
    thread: Thread, patient: User, clinician: User
) -> None:
    do_resolve(team(clinician, thread))

    do_post_message(ThreadAccess(thread, patient), body="Finalement, ça recommence.")

    thread.refresh_from_db()
    assert thread.state == "open" and thread.awaiting_team
    assert thread.response_due_at is not None


def test_a_staff_discussion_is_triaged_out_of_the_patients_sight(
    make_thread: Callable[..., Thread],
    patient: User,
    clinician: User,
    colleague: User,
    pushed: list[Event],
) -> None:
    staff = make_thread(clinician, topic=Topic.CASE, subject="Avis", body="Qu'en penses-tu ?")
    pushed.clear()

    do_assign(team(clinician, staff), colleague.pk)

    assert set(thread_events(pushed)) == {user_group(clinician.pk), user_group(colleague.pk)}
    assert all(user_group(patient.pk) not in groups for _k, _p, groups in pushed)


@pytest.mark.parametrize(
    "change",
    [
        lambda access, who: do_assign(access, who.pk),
        lambda access, who: do_assign(access, None),
        lambda access, who: do_set_urgency(access, "urgent"),
        lambda access, who: do_resolve(access),
        lambda access, who: do_reopen(access),
    ],
    ids=["assign", "unassign", "urgency", "resolve", "reopen"],
)
def test_patients_cannot_triage(
    change: Callable[[ThreadAccess, User], Any],
    thread: Thread,
    patient: User,
    clinician: User,
    pushed: list[Event],
) -> None:
    before = Thread.objects.values().get(pk=thread.pk)

    with pytest.raises(MessagingError):
        change(ThreadAccess(thread, patient), clinician)

    assert Thread.objects.values().get(pk=thread.pk) == before
    assert changes(thread) == []
    assert pushed == []
