"""Conversations: starting them, posting, reading, and the team's triage actions.

Every change is audited and pushes live events after the commit (`apps.core.realtime`):
`messaging.message` and `messaging.read` to the thread's open pages, `messaging.thread` and
`messaging.unread` to the people who can see the thread. People who are not online get an
in-app notification delivered by their chosen channel, without any clinical content.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core import presence
from apps.core.realtime import send_events_on_commit, user_group
from apps.records.access import Level, Via, get_patient_for_user
from apps.records.models import CareTeamMember, Patient
from apps.records.services.documents import StoredFile

from ..access import ThreadAccess, threads_for_user
from ..models import PATIENT_TOPICS, STAFF_TOPICS, Message, Participant, Thread, Topic
from . import MessagingError, attachments, hours

MAX_SUBJECT = 200
MAX_BODY = 10_000


def thread_group(thread_id: int) -> str:
    return f"thread.{thread_id}"


def thread_url(thread: Thread, user: User) -> str:
    """Where `user` reads the thread: the patient portal or the clinic."""
    name = "messaging:thread" if user.role == Role.PATIENT else "messaging:clinic_thread"
    return reverse(name, args=[thread.pk])


# ---------------------------------------------------------------------------------------------
# Who sees a thread


def team_members(thread: Thread) -> list[User]:
    """The active clinicians of the patient's current care teams (they all see the thread)."""
    members = CareTeamMember.objects.filter(
        care_team__patient_id=thread.patient_id,
        care_team__active=True,
        ended_at__isnull=True,
        user__is_active=True,
        user__role__in=list(CLINICAL_ROLES),
    ).select_related("user")
    seen: dict[int, User] = {}
    leads: set[int] = set()
    for member in members.order_by("-is_lead", "user__last_name"):
        seen.setdefault(member.user_id, member.user)
        if member.is_lead:
            leads.add(member.user_id)
    users = list(seen.values())
    for user in users:
        user.is_team_lead = user.pk in leads  # type: ignore[attr-defined]
    return users


def viewers(thread: Thread, team: list[User] | None = None) -> list[User]:
    """Everyone who can see the thread: the care team, and the patient unless staff-only."""
    people = list(team if team is not None else team_members(thread))
    owner = _patient_user(thread)
    if owner is not None:
        people.append(owner)
    return people


def _patient_user(thread: Thread) -> User | None:
    if thread.staff_only:
        return None
    owner = thread.patient.user
    return owner if owner is not None and owner.is_active else None


# ---------------------------------------------------------------------------------------------
# Unread counts


def unread_threads(user: User) -> QuerySet[Thread]:
    """The threads `user` may see with a message by somebody else since they last read.

    Posting moves the author's own marker to the message's time (in `_post`), so a thread whose
    last message is the reader's own is read by construction. For the team, a resolved thread
    needs nothing more (a new message from the patient reopens it).
    """
    threads = threads_for_user(user).filter(message_count__gt=0)
    if user.role != Role.PATIENT:
        threads = threads.filter(state=Thread.State.OPEN)
    read = Participant.objects.filter(
        thread=OuterRef("pk"), user=user, last_read_at__gte=OuterRef("last_message_at")
    )
    return threads.exclude(Exists(read))


def unread_thread_count(user: User) -> int:
    return unread_threads(user).count()


# ---------------------------------------------------------------------------------------------
# Events


def _thread_event(thread: Thread, user: User) -> tuple[str, dict[str, Any], list[str]]:
    payload = {
        "thread": thread.pk,
        "state": thread.state,
        "urgency": thread.urgency,
        "assignee_id": thread.assignee_id,
        "last_message_at": thread.last_message_at.isoformat(),
        "url": thread_url(thread, user),
    }
    return ("messaging.thread", payload, [user_group(user.pk)])


def thread_changed_events(
    thread: Thread, people: Iterable[User], *, unread: bool = True
) -> list[tuple[str, dict[str, Any], list[str]]]:
    events = []
    for person in people:
        events.append(_thread_event(thread, person))
        if unread:
            events.append(
                (
                    "messaging.unread",
                    {"threads": unread_thread_count(person)},
                    [user_group(person.pk)],
                )
            )
    return events


# ---------------------------------------------------------------------------------------------
# Starting and posting


def _clean_subject(subject: Any) -> str:
    subject = " ".join(str(subject or "").split())
    if not subject:
        raise MessagingError(_("Give the conversation a subject."))
    return subject[:MAX_SUBJECT]


def _clean_body(body: Any, *, has_files: bool) -> str:
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise MessagingError(_("The message must be text."))
    body = body.replace("\x00", "").replace("\r\n", "\n").strip()
    if not body and not has_files:
        raise MessagingError(_("Write a message or attach a file."))
    if len(body) > MAX_BODY:
        raise MessagingError(
            _("The message is too long: at most %(n)s characters.") % {"n": MAX_BODY}
        )
    return body


def join_thread(thread: Thread, user: User) -> Participant:
    participant, _created = Participant.objects.get_or_create(thread=thread, user=user)
    return participant


def do_start_thread(
    user: User,
    *,
    topic: str,
    subject: str,
    body: str,
    files: Sequence[UploadedFile] = (),
    patient_id: Any = None,
    mention_ids: Iterable[Any] = (),
    request: HttpRequest | None = None,
) -> Thread:
    """A new conversation with its first message.

    A patient writes to their own care team (`patient_id` is theirs whatever is passed). A
    clinician on the patient's care team starts a staff-only discussion (case, handover) or
    writes to the patient (any patient topic).
    """
    if topic not in Topic.values:
        raise MessagingError(_("Choose a topic."))
    if user.role == Role.PATIENT:
        patient = Patient.objects.filter(user=user).first()
        if patient is None:
            raise MessagingError(_("Your account has no patient record yet."))
        if topic not in PATIENT_TOPICS:
            raise MessagingError(_("Choose a topic."))
        access = get_patient_for_user(
            user, patient.pk, request=request, what="messaging", action=None
        )
    else:
        access = get_patient_for_user(
            user, patient_id, request=request, need=Level.CLINICAL, what="messaging", action=None
        )
        if access.via != Via.CARE_TEAM:
            raise MessagingError(_("Only the patient's care team can write about this patient."))
    subject = _clean_subject(subject)
    _clean_body(body, has_files=bool(files))
    staff_only = topic in STAFF_TOPICS
    now = timezone.now()
    with transaction.atomic():
        thread = Thread.objects.create(
            patient=access.patient,
            topic=topic,
            subject=subject,
            staff_only=staff_only,
            created_by=user,
            created_at=now,
            last_message_at=now,
        )
        audit(
            Action.CREATE,
            request=request,
            actor=user,
            obj=thread,
            patient_id=str(thread.patient_id),
            detail={"what": "thread", "topic": topic, "staff_only": staff_only},
        )
        thread_access = ThreadAccess(thread, user)
        do_post_message(
            thread_access, body=body, files=files, mention_ids=mention_ids, request=request
        )
    return thread


def do_post_message(
    access: ThreadAccess,
    *,
    body: str,
    files: Sequence[UploadedFile] = (),
    mention_ids: Iterable[Any] = (),
    request: HttpRequest | None = None,
) -> Message:
    """Add a message (and its files) to the thread; the readers are told live, or notified.

    A patient's message reopens a resolved thread and starts the team's answer time; an answer
    from the team ends it. Outside opening hours the patient's first message since the team last
    wrote gets an automatic reply saying when to expect an answer.
    """
    body = _clean_body(body, has_files=bool(files))
    team = team_members(access.thread)
    mentioned = _mentioned(access, mention_ids, team)
    stored = attachments.store_attachments(files)
    try:
        message = _post(access, body, stored, mentioned, team, request)
    except BaseException:
        attachments.discard(stored)
        raise
    return message


def _post(
    access: ThreadAccess,
    body: str,
    stored: list[StoredFile],
    mentioned: list[User],
    team: list[User],
    request: HttpRequest | None,
) -> Message:
    user = access.user
    team_ids = {member.pk for member in team}
    now = timezone.now()
    with transaction.atomic():
        thread = (
            Thread.objects.select_for_update(of=("self",))
            .select_related("patient__user")
            .get(pk=access.thread.pk)
        )
        was_awaiting = thread.awaiting_team
        message = Message.objects.create(
            thread=thread, patient_id=thread.patient_id, author=user, sent_at=now, body=body
        )
        if stored:
            attachments.attach(message, stored)
        if mentioned:
            message.mentions.set(mentioned)
        fields = ["last_message_at", "message_count", "last_message_by_patient"]
        thread.last_message_at = now
        thread.message_count += 1
        if access.is_patient:
            thread.last_message_by_patient = True
            if thread.state == Thread.State.RESOLVED:
                thread.state, thread.resolved_at, thread.resolved_by = Thread.State.OPEN, None, None
                fields += ["state", "resolved_at", "resolved_by"]
            if not was_awaiting or thread.response_due_at is None:
                thread.response_due_at = hours.response_due(now)
                fields.append("response_due_at")
        else:
            thread.last_message_by_patient = False
            thread.response_due_at = None
            fields.append("response_due_at")
        thread.save(update_fields=fields)
        participant = join_thread(thread, user)
        participant.last_read_at = now
        participant.save(update_fields=["last_read_at"])
        for person in mentioned:
            join_thread(thread, person)
        audit(
            Action.CREATE,
            request=request,
            actor=user,
            obj=message,
            patient_id=str(thread.patient_id),
            detail=ThreadAccess(thread, user).audit_detail(
                what="message", files=len(stored), mentions=[p.pk for p in mentioned]
            ),
        )
        automatic = None
        if access.is_patient and not was_awaiting and not hours.is_open(now):
            automatic = _automatic_reply(thread, now)
        events: list[tuple[str, dict[str, Any], list[str]]] = [
            (
                "messaging.message",
                {
                    "thread": thread.pk,
                    "message": message.pk,
                    "author_id": user.pk,
                    "sent_at": message.sent_at.isoformat(),
                },
                [thread_group(thread.pk)],
            )
        ]
        if automatic is not None:
            events.append(
                (
                    "messaging.message",
                    {
                        "thread": thread.pk,
                        "message": automatic.pk,
                        "author_id": None,
                        "sent_at": automatic.sent_at.isoformat(),
                    },
                    [thread_group(thread.pk)],
                )
            )
        people = viewers(thread, team)
        events += thread_changed_events(thread, people)
        send_events_on_commit(events)
        _notify_offline(thread, user, people, team_ids, mentioned)
    refresh_thread(access.thread, thread)
    return message


def refresh_thread(stale: Thread, fresh: Thread) -> None:
    """Let the caller's thread object show the saved state."""
    for field in Thread._meta.concrete_fields:
        setattr(stale, field.attname, getattr(fresh, field.attname))


def _mentioned(access: ThreadAccess, mention_ids: Iterable[Any], team: list[User]) -> list[User]:
    """Colleagues named in a staff message: they must be on the patient's care team."""
    wanted = {int(pk) for pk in mention_ids if str(pk).isdigit()}
    if not wanted:
        return []
    if access.is_patient:
        raise MessagingError(_("Only the care team can mention colleagues."))
    found = [member for member in team if member.pk in wanted and member.pk != access.user.pk]
    if len(found) != len(wanted - {access.user.pk}):
        raise MessagingError(_("Only members of the patient's care team can be mentioned."))
    return found


def _automatic_reply(thread: Thread, now: dt.datetime) -> Message:
    owner = thread.patient.user
    language = (owner.preferred_language if owner else "") or settings.LANGUAGE_CODE
    opening = timezone.localtime(hours.next_opening(now))
    due = timezone.localtime(thread.response_due_at or hours.response_due(now))
    with translation.override(language):
        from django.utils.formats import date_format

        body = _(
            "Thank you for your message. The care team reads messages during opening hours and "
            "will read yours from %(opening)s; you can expect an answer by %(due)s.\n"
            "In an emergency, do not wait for an answer: call 144."
        ) % {
            "opening": date_format(opening, "DATETIME_FORMAT"),
            "due": date_format(due, "DATETIME_FORMAT"),
        }
    message = Message.objects.create(
        thread=thread,
        patient_id=thread.patient_id,
        author=None,
        automatic=True,
        sent_at=now + dt.timedelta(microseconds=1),
        body=body,
    )
    Thread.objects.filter(pk=thread.pk).update(message_count=F("message_count") + 1)
    thread.message_count += 1
    return message


def _notify_offline(
    thread: Thread,
    author: User,
    people: list[User],
    team_ids: set[int],
    mentioned: list[User],
) -> None:
    """Notify who should answer or read and is not online (once until they have read)."""
    from apps.notifications.services import notify

    wanted: dict[int, User] = {}
    owner = _patient_user(thread)
    if owner is not None and owner.pk != author.pk and author.role != Role.PATIENT:
        wanted[owner.pk] = owner
    if author.role == Role.PATIENT or thread.staff_only:
        for person in _staff_to_notify(thread, people, team_ids, author):
            if person.pk != author.pk:
                wanted[person.pk] = person
    for person in mentioned:
        wanted[person.pk] = person
    if not wanted:
        return
    online = presence.online(wanted)
    mentioned_ids = {person.pk for person in mentioned}
    participants = {
        p.user_id: p for p in Participant.objects.filter(thread=thread, user_id__in=list(wanted))
    }
    now = timezone.now()
    for pk, person in wanted.items():
        if pk in online and pk not in mentioned_ids:
            continue
        participant = participants.get(pk)
        if participant is None:
            participant = Participant.objects.create(thread=thread, user=person)
        already = participant.notified_at is not None and (
            participant.last_read_at is None or participant.notified_at > participant.last_read_at
        )
        if already and pk not in mentioned_ids:
            continue
        Participant.objects.filter(pk=participant.pk).update(notified_at=now)
        with translation.override(person.preferred_language or settings.LANGUAGE_CODE):
            title = (
                _("A colleague mentioned you in a conversation")
                if pk in mentioned_ids
                else _("New secure message")
            )
            notify(
                person,
                "message",
                title,
                "",
                thread_url(thread, person),
                ref=f"messaging.thread:{thread.pk}",
            )


def _staff_to_notify(
    thread: Thread, people: list[User], team_ids: set[int], author: User
) -> list[User]:
    """Who on the team should hear of a new message: the assignee, else the staff who took
    part, else the care-team leads, else the whole care team (never the author)."""
    team = [person for person in people if person.pk in team_ids and person.pk != author.pk]
    if thread.assignee_id is not None and thread.assignee_id != author.pk:
        return [person for person in team if person.pk == thread.assignee_id]
    taking_part = set(
        Participant.objects.filter(thread=thread, user_id__in=[person.pk for person in team])
        .exclude(last_read_at__isnull=True)
        .values_list("user_id", flat=True)
    )
    if taking_part:
        return [person for person in team if person.pk in taking_part]
    leads = [person for person in team if getattr(person, "is_team_lead", False)]
    return leads or team


# ---------------------------------------------------------------------------------------------
# Reading


def do_mark_read(access: ThreadAccess, *, request: HttpRequest | None = None) -> None:
    """Move the reader's marker to now; the other side sees the receipt live."""
    now = timezone.now()
    with transaction.atomic():
        updated = Participant.objects.filter(thread=access.thread, user=access.user).update(
            last_read_at=now
        )
        if not updated:
            Participant.objects.get_or_create(
                thread=access.thread, user=access.user, defaults={"last_read_at": now}
            )
        send_events_on_commit(
            [
                (
                    "messaging.read",
                    {
                        "thread": access.thread.pk,
                        "reader_id": access.user.pk,
                        "side": access.side,
                        "read_at": now.isoformat(),
                    },
                    [thread_group(access.thread.pk)],
                ),
                (
                    "messaging.unread",
                    {"threads": unread_thread_count(access.user)},
                    [user_group(access.user.pk)],
                ),
            ]
        )


def team_read_at(thread: Thread) -> dt.datetime | None:
    """When a member of the team last read the thread (the patient's read receipt)."""
    markers = Participant.objects.filter(thread=thread, last_read_at__isnull=False).exclude(
        user__role=Role.PATIENT
    )
    latest = markers.order_by("-last_read_at").values_list("last_read_at", flat=True).first()
    return latest


def patient_read_at(thread: Thread) -> dt.datetime | None:
    """When the patient last read the thread (the team's read receipt)."""
    markers = Participant.objects.filter(
        thread=thread, last_read_at__isnull=False, user__role=Role.PATIENT
    )
    return markers.order_by("-last_read_at").values_list("last_read_at", flat=True).first()
