"""Multidisciplinary meetings (RCP, tumour board): scheduling, participants, the agenda of
cases with their prepared summaries, the meeting itself (start, attendance, close) and its
video room. Decisions and their signature are in `meeting_decisions.py`.

Who may do what (the views have already checked that the user takes part in the meeting,
`access.get_meeting_for_user`, 404 and audited otherwise):
- the chair (the clinician who scheduled it) edits, cancels, adds participants, orders the
  agenda, starts, records attendance, signs decisions and closes the meeting;
- any participant adds a case of a patient whose record they may open (`get_patient_for_user`,
  404 and audited otherwise) and presents it: they edit its summary until the meeting starts.

Every change is audited and pushed to the participants' open pages (`care.meeting`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core.realtime import send_event_on_commit, user_group
from apps.notifications.services import notify
from apps.records.access import get_patient_for_user
from apps.teleconsult.models import Consultation
from apps.teleconsult.services import ConsultError
from apps.teleconsult.services.rooms import (
    do_close_staff_room,
    do_open_staff_room,
    set_room_staff,
)

from ..models import Meeting, MeetingCase, MeetingParticipant
from . import CareError
from .meeting_summary import build_case_summary

TITLE_MAX = 200
QUESTION_MAX = 500
SUMMARY_MAX = 20_000
# A meeting lasts at least a few minutes and at most a (long) working day.
MIN_LENGTH = dt.timedelta(minutes=5)
MAX_LENGTH = dt.timedelta(hours=12)
MAX_PARTICIPANTS = 40
MAX_CASES = 40

EDITABLE = (Meeting.Status.PLANNED,)
RUNNING = (Meeting.Status.PLANNED, Meeting.Status.IN_PROGRESS)


def meeting_url(meeting: Meeting) -> str:
    return reverse("care:meeting", args=[meeting.pk])


def member_ids(meeting: Meeting) -> list[int]:
    """The chair and every participant (who receive the meeting's events)."""
    ids = set(MeetingParticipant.objects.filter(meeting=meeting).values_list("user_id", flat=True))
    ids.add(meeting.chair_id)
    return sorted(ids)


def meeting_event(meeting: Meeting, case: MeetingCase | None = None) -> None:
    """Tell the participants' open pages that the meeting (or one of its cases) changed."""
    send_event_on_commit(
        "care.meeting",
        {
            "meeting": meeting.pk,
            "status": meeting.status,
            "case": case.pk if case is not None else None,
            "url": meeting_url(meeting),
        },
        groups=[user_group(pk) for pk in member_ids(meeting)],
    )


def colleagues(user: User) -> QuerySet[User]:
    """Who may be invited: active clinicians of the user's organisation."""
    if user.organization_id is None:
        return User.objects.none()
    return User.objects.filter(
        organization_id=user.organization_id, role__in=CLINICAL_ROLES, is_active=True
    ).order_by("last_name", "first_name", "pk")


def _audit(
    action: str,
    user: User,
    meeting: Meeting,
    request: HttpRequest | None,
    *,
    case: MeetingCase | None = None,
    **detail: Any,
) -> None:
    audit(
        action,
        request=request,
        actor=user,
        obj=case if case is not None else meeting,
        patient_id=str(case.patient_id) if case is not None else "",
        detail={"what": "meeting case" if case else "meeting", "meeting": meeting.pk, **detail},
    )


def check_chair(user: User, meeting: Meeting) -> None:
    if meeting.chair_id != user.pk:
        raise CareError(_("Only the chair of the meeting may do this."))


def _check_status(meeting: Meeting, allowed: Iterable[str], message: str) -> None:
    if meeting.status not in allowed:
        raise CareError(message)


def _clean_text(value: Any, maximum: int, empty: str, too_long: str) -> str:
    text = " ".join(str(value or "").split())
    if not text:
        raise CareError(empty)
    if len(text) > maximum:
        raise CareError(too_long)
    return text


def _check_times(starts_at: Any, ends_at: Any) -> None:
    if not isinstance(starts_at, dt.datetime) or not isinstance(ends_at, dt.datetime):
        raise CareError(_("Give the start and the end of the meeting."))
    if timezone.is_naive(starts_at) or timezone.is_naive(ends_at):
        raise CareError(_("Give the start and the end of the meeting."))
    if ends_at - starts_at < MIN_LENGTH:
        raise CareError(_("The meeting must end at least 5 minutes after it starts."))
    if ends_at - starts_at > MAX_LENGTH:
        raise CareError(_("A meeting lasts 12 hours at most."))


def _check_fields(title: Any, kind: Any, starts_at: Any, ends_at: Any) -> str:
    clean = _clean_text(
        title,
        TITLE_MAX,
        _("Give the meeting a title."),
        _("The title is too long (200 characters at most)."),
    )
    if kind not in Meeting.Kind.values:
        raise CareError(_("Choose the kind of meeting."))
    _check_times(starts_at, ends_at)
    return clean


def _invitees(user: User, ids: Iterable[Any]) -> list[User]:
    wanted: set[int] = set()
    for value in ids:
        if not str(value).isdigit():
            raise CareError(_("Choose participants from the list."))
        wanted.add(int(value))
    wanted.discard(user.pk)
    if len(wanted) > MAX_PARTICIPANTS:
        raise CareError(_("A meeting has at most 40 participants."))
    found = list(colleagues(user).filter(pk__in=wanted))
    if len(found) != len(wanted):
        raise CareError(_("Participants are clinicians of your organisation."))
    return found


def _invite(meeting: Meeting, person: User) -> None:
    notify(
        person,
        "care.task",
        _("You are invited to a multidisciplinary meeting"),
        _("Open the meeting to see its date and agenda."),
        meeting_url(meeting),
        ref=f"care.meeting:{meeting.pk}",
    )


# ---------------------------------------------------------------------------------------------
# Scheduling


def do_schedule_meeting(
    user: User,
    *,
    title: str,
    kind: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    participant_ids: Iterable[Any] = (),
    request: HttpRequest | None = None,
) -> Meeting:
    """A meeting chaired by `user` with clinicians of their organisation (who are notified)."""
    if user.role not in CLINICAL_ROLES or user.organization_id is None:
        raise CareError(_("Only clinicians of an organisation schedule meetings."))
    title = _check_fields(title, kind, starts_at, ends_at)
    if starts_at < timezone.now() - dt.timedelta(hours=1):
        raise CareError(_("A new meeting cannot start in the past."))
    invitees = _invitees(user, participant_ids)
    with transaction.atomic():
        meeting = Meeting.objects.create(
            organization_id=user.organization_id,
            title=title,
            kind=kind,
            starts_at=starts_at,
            ends_at=ends_at,
            chair=user,
            created_by=user,
        )
        # The chair has a seat too: their presence is recorded like everyone's.
        MeetingParticipant.objects.bulk_create(
            [MeetingParticipant(meeting=meeting, user=person) for person in [user, *invitees]]
        )
        _audit(Action.CREATE, user, meeting, request, participants=[p.pk for p in invitees])
        for person in invitees:
            _invite(meeting, person)
        meeting_event(meeting)
    return meeting


def _locked(meeting: Meeting) -> Meeting:
    """Lock the meeting's row and read it again into the caller's object."""
    meeting.refresh_from_db(from_queryset=Meeting.objects.select_for_update())
    return meeting


def do_edit_meeting(
    user: User,
    meeting: Meeting,
    *,
    title: str,
    kind: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    request: HttpRequest | None = None,
) -> Meeting:
    """The chair changes a planned meeting's title, kind or time."""
    check_chair(user, meeting)
    title = _check_fields(title, kind, starts_at, ends_at)
    with transaction.atomic():
        meeting = _locked(meeting)
        _check_status(meeting, EDITABLE, _("Only a planned meeting can be changed."))
        meeting.title, meeting.kind, meeting.starts_at, meeting.ends_at = (
            title,
            kind,
            starts_at,
            ends_at,
        )
        meeting.save(update_fields=["title", "kind", "starts_at", "ends_at"])
        _audit(Action.UPDATE, user, meeting, request, edited=True)
        meeting_event(meeting)
    return meeting


def do_cancel_meeting(
    user: User, meeting: Meeting, *, request: HttpRequest | None = None
) -> Meeting:
    """The chair cancels a planned meeting; the participants are told."""
    check_chair(user, meeting)
    with transaction.atomic():
        meeting = _locked(meeting)
        _check_status(meeting, EDITABLE, _("Only a planned meeting can be cancelled."))
        meeting.status = Meeting.Status.CANCELLED
        meeting.save(update_fields=["status"])
        _audit(Action.UPDATE, user, meeting, request, status=meeting.status)
        others = User.objects.filter(
            pk__in=[pk for pk in member_ids(meeting) if pk != user.pk], is_active=True
        )
        for person in others:
            notify(
                person,
                "care.task",
                _("A multidisciplinary meeting was cancelled"),
                _("Open the meeting to see which one."),
                meeting_url(meeting),
                ref=f"care.meeting:{meeting.pk}",
            )
        _close_room(meeting, user)
        meeting_event(meeting)
    return meeting


def do_add_participant(
    user: User, meeting: Meeting, participant_id: Any, *, request: HttpRequest | None = None
) -> MeetingParticipant:
    """The chair invites one more clinician of the organisation (notified)."""
    check_chair(user, meeting)
    _check_status(meeting, RUNNING, _("This meeting is over."))
    found = _invitees(user, [participant_id])
    if not found:
        raise CareError(_("The chair already takes part."))
    person = found[0]
    with transaction.atomic():
        seat, created = MeetingParticipant.objects.get_or_create(meeting=meeting, user=person)
        if not created:
            raise CareError(_("%(name)s already takes part.") % {"name": person.get_full_name()})
        _audit(Action.UPDATE, user, meeting, request, added_participant=person.pk)
        _invite(meeting, person)
        _sync_room(meeting)
        meeting_event(meeting)
    return seat


def do_remove_participant(
    user: User, meeting: Meeting, participant_id: Any, *, request: HttpRequest | None = None
) -> None:
    """The chair takes someone off the meeting (they lose it and its video room)."""
    check_chair(user, meeting)
    _check_status(meeting, RUNNING, _("This meeting is over."))
    if not str(participant_id).isdigit() or int(participant_id) == meeting.chair_id:
        raise CareError(_("Choose a participant other than the chair."))
    with transaction.atomic():
        deleted, _rows = MeetingParticipant.objects.filter(
            meeting=meeting, user_id=int(participant_id)
        ).delete()
        if not deleted:
            raise CareError(_("This person does not take part."))
        _audit(Action.UPDATE, user, meeting, request, removed_participant=int(participant_id))
        _sync_room(meeting)
        # The person removed still gets this one event: their open page reloads into a 404.
        meeting_event(meeting)
        send_event_on_commit(
            "care.meeting",
            {"meeting": meeting.pk, "status": meeting.status, "case": None, "url": ""},
            groups=[user_group(int(participant_id))],
        )


# ---------------------------------------------------------------------------------------------
# Agenda


def do_add_case(
    user: User,
    meeting: Meeting,
    patient_id: Any,
    question: str,
    *,
    request: HttpRequest | None = None,
) -> MeetingCase:
    """A participant puts a patient of theirs on the agenda, with a summary built from the
    record. Without access to that record: 404, audited (as anywhere else)."""
    _check_status(meeting, RUNNING, _("Cases are added before or during the meeting."))
    question = _clean_text(
        question,
        QUESTION_MAX,
        _("Write the question for the meeting."),
        _("The question is too long (500 characters at most)."),
    )
    access = get_patient_for_user(
        user, patient_id, request=request, what="meeting case", action=None
    )
    if access.is_patient_self or user.role not in CLINICAL_ROLES:
        raise CareError(_("Only clinicians present cases."))
    summary = build_case_summary(access)
    try:
        with transaction.atomic():
            meeting = _locked(meeting)
            if meeting.cases.count() >= MAX_CASES:
                raise CareError(_("The agenda is full (40 cases at most)."))
            last = meeting.cases.aggregate(last=Max("order"))["last"]
            case = MeetingCase.objects.create(
                meeting=meeting,
                patient=access.patient,
                order=(last or 0) + 1,
                question=question,
                summary=summary,
                presented_by=user,
                prepared_at=timezone.now(),
            )
            audit(
                Action.CREATE,
                request=request,
                actor=user,
                obj=case,
                patient_id=str(access.patient.pk),
                detail=access.audit_detail(what="meeting case", meeting=meeting.pk),
            )
            meeting_event(meeting, case)
    except IntegrityError:
        raise CareError(_("This patient is already on the agenda.")) from None
    return case


def check_presenter(user: User, case: MeetingCase) -> None:
    if case.presented_by_id != user.pk:
        raise CareError(_("Only the clinician presenting the case may change its summary."))


def do_update_summary(
    user: User,
    case: MeetingCase,
    summary: str,
    *,
    question: str | None = None,
    request: HttpRequest | None = None,
) -> MeetingCase:
    """The presenter edits the prepared summary (and question) before the meeting."""
    check_presenter(user, case)
    _check_status(case.meeting, EDITABLE, _("The summary can only be changed before the meeting."))
    text = (summary or "").replace("\r\n", "\n").strip()
    if len(text) > SUMMARY_MAX:
        raise CareError(_("The summary is too long (20000 characters at most)."))
    fields = ["summary", "prepared_at"]
    if question is not None:
        case.question = _clean_text(
            question,
            QUESTION_MAX,
            _("Write the question for the meeting."),
            _("The question is too long (500 characters at most)."),
        )
        fields.append("question")
    case.summary, case.prepared_at = text, timezone.now()
    with transaction.atomic():
        case.save(update_fields=fields)
        _audit(Action.UPDATE, user, case.meeting, request, case=case, summary=True)
        meeting_event(case.meeting, case)
    return case


def do_reorder_cases(
    user: User, meeting: Meeting, case_ids: list[Any], *, request: HttpRequest | None = None
) -> None:
    """The chair sets the order of the agenda (every case of the meeting, once)."""
    check_chair(user, meeting)
    _check_status(meeting, RUNNING, _("This meeting is over."))
    with transaction.atomic():
        cases = {case.pk: case for case in MeetingCase.objects.filter(meeting=meeting)}
        wanted = [int(pk) for pk in case_ids if str(pk).isdigit()]
        if sorted(wanted) != sorted(cases) or len(set(wanted)) != len(wanted):
            raise CareError(_("The agenda changed meanwhile: reload the page."))
        for position, pk in enumerate(wanted, start=1):
            cases[pk].order = position
        MeetingCase.objects.bulk_update(list(cases.values()), ["order"])
        _audit(Action.UPDATE, user, meeting, request, order=wanted)
        meeting_event(meeting)


def do_move_case(
    user: User, case: MeetingCase, direction: str, *, request: HttpRequest | None = None
) -> None:
    """Move a case one place up or down the agenda."""
    if direction not in ("up", "down"):
        raise CareError(_("Move the case up or down."))
    ids = list(
        MeetingCase.objects.filter(meeting=case.meeting)
        .order_by("order", "pk")
        .values_list("pk", flat=True)
    )
    index = ids.index(case.pk)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(ids):
        ids[index], ids[other] = ids[other], ids[index]
    do_reorder_cases(user, case.meeting, ids, request=request)


# ---------------------------------------------------------------------------------------------
# The meeting


def do_start_meeting(
    user: User, meeting: Meeting, *, request: HttpRequest | None = None
) -> Meeting:
    check_chair(user, meeting)
    with transaction.atomic():
        meeting = _locked(meeting)
        _check_status(meeting, EDITABLE, _("Only a planned meeting can start."))
        meeting.status, meeting.started_at = Meeting.Status.IN_PROGRESS, timezone.now()
        meeting.save(update_fields=["status", "started_at"])
        _audit(Action.UPDATE, user, meeting, request, status=meeting.status)
        meeting_event(meeting)
    return meeting


def do_record_attendance(
    user: User,
    meeting: Meeting,
    present_user_ids: Iterable[Any],
    *,
    request: HttpRequest | None = None,
) -> list[int]:
    """The chair ticks who is present (the list decisions signed from now on carry)."""
    check_chair(user, meeting)
    _check_status(
        meeting,
        (Meeting.Status.IN_PROGRESS,),
        _("Attendance is recorded while the meeting is in progress."),
    )
    present = {int(pk) for pk in present_user_ids if str(pk).isdigit()}
    with transaction.atomic():
        seats = list(MeetingParticipant.objects.select_for_update().filter(meeting=meeting))
        known = {seat.user_id for seat in seats}
        if not present <= known:
            raise CareError(_("Only participants of the meeting can be marked present."))
        for seat in seats:
            seat.attended = seat.user_id in present
        MeetingParticipant.objects.bulk_update(seats, ["attended"])
        _audit(Action.UPDATE, user, meeting, request, present=sorted(present))
        meeting_event(meeting)
    return sorted(present)


def do_close_meeting(
    user: User, meeting: Meeting, *, request: HttpRequest | None = None
) -> Meeting:
    """The chair closes the meeting; its video room ends. Unsigned decisions stay drafts the
    chair may still sign."""
    check_chair(user, meeting)
    with transaction.atomic():
        meeting = _locked(meeting)
        _check_status(
            meeting, (Meeting.Status.IN_PROGRESS,), _("Only a meeting in progress can close.")
        )
        meeting.status, meeting.closed_at = Meeting.Status.CLOSED, timezone.now()
        meeting.save(update_fields=["status", "closed_at"])
        _audit(Action.UPDATE, user, meeting, request, status=meeting.status)
        _close_room(meeting, user)
        meeting_event(meeting)
    return meeting


# ---------------------------------------------------------------------------------------------
# Video room (a teleconsult staff room)


def do_open_meeting_room(
    meeting: Meeting, user: User, *, request: HttpRequest | None = None
) -> Consultation:
    """The meeting's video room, opened on first use for the chair and the participants.

    A room ended from inside (someone pressed "end") is replaced by a new one.
    """
    _check_status(meeting, RUNNING, _("This meeting is over: its video room is closed."))
    if user.pk not in member_ids(meeting):
        raise CareError(_("Only participants join the meeting's video."))
    with transaction.atomic():
        meeting = _locked(meeting)
        room = meeting.consultation
        if room is not None and not room.is_closed:
            _sync_room(meeting)
            return room
        try:
            room = do_open_staff_room(
                user, member_ids(meeting), title=meeting.title, request=request
            )
        except ConsultError as error:
            raise CareError(str(error)) from None
        meeting.consultation = room
        meeting.save(update_fields=["consultation"])
        _audit(Action.UPDATE, user, meeting, request, video_room=room.pk)
    return room


def _sync_room(meeting: Meeting) -> None:
    room = meeting.consultation
    if room is not None and not room.is_closed:
        set_room_staff(room, member_ids(meeting))


def _close_room(meeting: Meeting, user: User) -> None:
    if meeting.consultation is not None:
        do_close_staff_room(meeting.consultation, user)
