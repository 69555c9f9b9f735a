"""Offline readers are notified of new messages by their chosen channels — never with clinical
content in an email or SMS — once until they have read, and on the team the right people are."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.utils import translation
from django.utils.translation import gettext

from apps.accounts.models import User
from apps.core import presence
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Message, Thread, Topic
from apps.messaging.services.threads import (
    do_mark_read,
    do_post_message,
)
from apps.messaging.services.triage import (
    do_assign,
)
from apps.notifications.models import Notification, Preference
from apps.notifications.sms import LocmemSmsBackend
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member

SUBJECT = "Rougeur autour de la cicatrice"
FIRST = "La plaie suinte depuis hier soir"
ANSWER = "Appliquez la pommade Bepanthen deux fois par jour"


@pytest.fixture(autouse=True)
def _always_open(settings: Any) -> None:
    """No automatic replies here: the team reads messages around the clock."""
    settings.MESSAGING_OPENING_HOURS = (
        frozenset(range(1, 8)),
        dt.time(0, 0),
        dt.time(23, 59, 59, 999999),
    )


@pytest.fixture
def post(django_capture_on_commit_callbacks: Any) -> Callable[..., Message]:
    """Post as `author`, running what waits for the commit (the notifications' delivery)."""

    def post(author: User, thread: Thread, body: str, **kwargs: Any) -> Message:
        with django_capture_on_commit_callbacks(execute=True):
            return do_post_message(ThreadAccess(thread, author), body=body, **kwargs)

    return post


@pytest.fixture
def thread(make_thread: Callable[..., Thread]) -> Thread:
    """A patient's question (started without running the commit hooks: no mail yet)."""
    return make_thread(subject=SUBJECT, body=FIRST)


def notified(user: User) -> list[Notification]:
    return list(Notification.objects.filter(user=user, kind="message").order_by("pk"))


def titled(language: str, text: str) -> str:
    with translation.override(language):
        return gettext(text)


def test_an_offline_patient_is_told_without_any_clinical_content(
    thread: Thread, patient: User, clinician: User, post: Callable[..., Message]
) -> None:
    patient.phone = "+41791234567"
    patient.preferred_language = "en"
    patient.save(update_fields=["phone", "preferred_language"])
    Preference.objects.create(user=patient, kind="message", email=True, sms=True)

    post(clinician, thread, ANSWER)

    [notification] = notified(patient)
    assert notification.title == "New secure message"
    assert notification.body == ""
    assert notification.link == f"/messages/{thread.pk}/"
    [email] = [m for m in mail.outbox if m.to == [patient.email]]
    [(phone, sms)] = LocmemSmsBackend.outbox
    assert phone == patient.phone
    assert f"/messages/{thread.pk}/" in email.body and f"/messages/{thread.pk}/" in sms
    for secret in (SUBJECT, FIRST, ANSWER, "Bepanthen", clinician.last_name):
        assert secret not in email.subject
        assert secret not in email.body
        assert secret not in sms


def test_the_title_is_in_the_recipients_language(
    thread: Thread, patient: User, clinician: User, post: Callable[..., Message]
) -> None:
    patient.preferred_language = "de"
    patient.save(update_fields=["preferred_language"])

    with translation.override("fr"):
        post(clinician, thread, ANSWER)

    [notification] = notified(patient)
    assert notification.title == titled("de", "New secure message")


def test_an_online_patient_sees_it_live_and_gets_no_notification(
    thread: Thread, patient: User, clinician: User, post: Callable[..., Message]
) -> None:
    presence.connected(patient.pk)

    post(clinician, thread, ANSWER)

    assert notified(patient) == []
    assert [m for m in mail.outbox if m.to == [patient.email]] == []


def test_no_second_notification_until_the_patient_has_read(
    thread: Thread, patient: User, clinician: User, post: Callable[..., Message]
) -> None:
    post(clinician, thread, ANSWER)
    post(clinician, thread, "Et revenez si la rougeur s'étend.")

    assert len(notified(patient)) == 1
    assert len([m for m in mail.outbox if m.to == [patient.email]]) == 1

    do_mark_read(ThreadAccess(thread, patient))
    post(clinician, thread, "Comment va la plaie ?")

    assert len(notified(patient)) == 2


def test_the_author_is_never_notified_of_their_own_message(
    thread: Thread, patient: User, clinician: User, post: Callable[..., Message]
) -> None:
    post(clinician, thread, ANSWER)
    do_mark_read(ThreadAccess(thread, patient))  # a new message would be worth telling now

    post(patient, thread, "Merci")

    assert len(notified(patient)) == 1  # the answer's; not their own message


# ---------------------------------------------------------------------------------------------
# Who on the team hears of a patient's message


def test_the_assignee_alone_is_told(
    thread: Thread,
    patient: User,
    clinician: User,
    colleague: User,
    post: Callable[..., Message],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # the lead has read (so would hear of a new message but for the assignee)
    do_mark_read(ThreadAccess(thread, clinician))
    with django_capture_on_commit_callbacks(execute=True):
        do_assign(ThreadAccess(thread, clinician), colleague.pk)
    do_mark_read(ThreadAccess(thread, colleague))
    before = (len(notified(clinician)), len(notified(colleague)))

    post(patient, thread, "Une photo de plus ?")

    assert (len(notified(clinician)), len(notified(colleague))) == (before[0], before[1] + 1)


def test_without_an_assignee_the_staff_taking_part_are_told(
    patient: User,
    clinician: User,
    colleague: User,
    make_thread: Callable[..., Thread],
    post: Callable[..., Message],
) -> None:
    presence.connected(clinician.pk)  # the lead saw the question come in live…
    thread = make_thread(subject=SUBJECT, body=FIRST)
    presence.disconnected(clinician.pk)  # …and has left since, without opening it
    post(colleague, thread, "Pouvez-vous envoyer une photo ?")
    do_mark_read(ThreadAccess(thread, patient))

    post(patient, thread, "Voilà la photo")

    assert len(notified(colleague)) == 1
    assert notified(clinician) == []  # the lead, not taking part


def test_without_anyone_taking_part_the_care_team_leads_are_told(
    patient: User,
    clinician: User,
    colleague: User,
    make_thread: Callable[..., Thread],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        thread = make_thread(subject=SUBJECT, body=FIRST)

    [notification] = notified(clinician)
    assert notification.title == titled(clinician.preferred_language, "New secure message")
    assert notification.link == f"/clinic/messages/{thread.pk}/"
    assert notified(colleague) == []
    [email] = mail.outbox
    assert email.to == [clinician.email]
    assert SUBJECT not in email.subject + email.body and FIRST not in email.body


def test_without_leads_the_whole_care_team_is_told(
    patient2: User,
    clinician: User,
    colleague: User,
    make_patient: Callable[..., Patient],
    make_thread: Callable[..., Thread],
    django_capture_on_commit_callbacks: Any,
) -> None:
    chart = make_patient(patient2)
    team = default_team(chart)
    do_add_member(team, clinician)
    do_add_member(team, colleague)

    with django_capture_on_commit_callbacks(execute=True):
        make_thread(patient2, patient_record=chart, subject=SUBJECT, body=FIRST)

    assert len(notified(clinician)) == 1
    assert len(notified(colleague)) == 1
    assert sorted(m.to[0] for m in mail.outbox) == sorted([clinician.email, colleague.email])


def test_team_members_who_are_online_are_not_notified(
    clinician: User, make_thread: Callable[..., Thread], django_capture_on_commit_callbacks: Any
) -> None:
    presence.connected(clinician.pk)

    with django_capture_on_commit_callbacks(execute=True):
        make_thread(subject=SUBJECT, body=FIRST)

    assert notified(clinician) == []


# ---------------------------------------------------------------------------------------------
# Staff discussions and mentions


@pytest.fixture
def discussion(make_thread: Callable[..., Thread], clinician: User) -> Thread:
    """A staff-only case discussion started by the lead (commit hooks not run: no mail yet)."""
    return make_thread(
        clinician, topic=Topic.CASE, subject="Avis plaie", body="Qu'en pensez-vous ?"
    )


def test_a_mentioned_colleague_is_told_even_online_and_every_time(
    discussion: Thread,
    patient: User,
    clinician: User,
    colleague: User,
    post: Callable[..., Message],
) -> None:
    presence.connected(colleague.pk)
    before = len(notified(colleague))

    post(clinician, discussion, "Peux-tu passer la voir ?", mention_ids=[colleague.pk])
    post(clinician, discussion, "Avant 16 h si possible.", mention_ids=[colleague.pk])

    mentions = notified(colleague)[before:]
    assert [n.title for n in mentions] == [
        titled(colleague.preferred_language, "A colleague mentioned you in a conversation")
    ] * 2
    assert {n.link for n in mentions} == {f"/clinic/messages/{discussion.pk}/"}
    assert notified(patient) == []
    assert "Peux-tu" not in "".join(m.subject + m.body for m in mail.outbox)


def test_a_mention_in_the_patients_conversation_tells_both(
    thread: Thread, patient: User, clinician: User, colleague: User, post: Callable[..., Message]
) -> None:
    post(clinician, thread, ANSWER, mention_ids=[colleague.pk])

    assert len(notified(colleague)) == 1
    assert len(notified(patient)) == 1


def test_the_patient_never_hears_of_a_staff_discussion(
    discussion: Thread,
    patient: User,
    clinician: User,
    colleague: User,
    post: Callable[..., Message],
) -> None:
    before = (len(notified(clinician)), len(notified(colleague)))

    post(colleague, discussion, "Je passe à 15 h.")
    post(clinician, discussion, "Merci.")

    assert notified(patient) == []
    assert [m for m in mail.outbox if m.to == [patient.email]] == []
    # the staff taking part hear of each other's messages
    assert (len(notified(clinician)), len(notified(colleague))) == (before[0] + 1, before[1] + 1)


def test_starting_a_staff_discussion_tells_the_rest_of_the_team(
    clinician: User,
    colleague: User,
    make_thread: Callable[..., Thread],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # The lead starts it: the routing (assignee, staff taking part, leads, team) must leave the
    # author out at each step, or only the author "takes part" and nobody hears of it.
    with django_capture_on_commit_callbacks(execute=True):
        make_thread(clinician, topic=Topic.HANDOVER, subject="Relève", body="Pansement ce soir.")

    assert len(notified(colleague)) == 1
    assert notified(clinician) == []
