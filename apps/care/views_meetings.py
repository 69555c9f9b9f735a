"""Pages of multidisciplinary meetings: my meetings, scheduling, and the meeting page (agenda,
attendance, decisions, signature, video), plus the fragments its live updates fetch.

Every view reaches the meeting through `access.get_meeting_for_user` (its chair and
participants only; 404 and an audit row for anybody else) and changes it through one service
of `services.meetings` / `services.meeting_decisions`; a CareError is shown to the user. The
cases' patient data shown on a page is audited per patient (one batch append to the chain).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.records.access import deny
from apps.records.views.common import paginate

from .access import get_case_for_user, get_meeting_for_user, is_clinician, meetings_for_user
from .forms_meetings import (
    MeetingForm,
    ScheduleForm,
    SummaryForm,
    parse_decision,
)
from .models import Meeting, MeetingCase
from .services import CareError
from .services.meeting_decisions import do_record_decision, do_sign_decision
from .services.meeting_pages import case_context, meeting_context
from .services.meetings import (
    colleagues,
    do_add_case,
    do_add_participant,
    do_cancel_meeting,
    do_close_meeting,
    do_edit_meeting,
    do_move_case,
    do_open_meeting_room,
    do_record_attendance,
    do_remove_participant,
    do_schedule_meeting,
    do_start_meeting,
    do_update_summary,
)

PAGE_SIZE = 20
OPEN = (Meeting.Status.PLANNED, Meeting.Status.IN_PROGRESS)


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _clinician(request: HttpRequest, what: str, **ids: Any) -> User:
    user = _user(request)
    if not is_clinician(user):
        raise deny(user, request=request, what=what, object_type="care.meeting", **ids)
    return user


def _meeting(request: HttpRequest, pk: Any, what: str = "meeting", **kwargs: Any) -> Meeting:
    _clinician(request, what, object_id=pk)
    return get_meeting_for_user(
        _user(request),
        pk,
        request=request,
        queryset=Meeting.objects.select_related("chair", "consultation"),
        **kwargs,
    )


def _chair(request: HttpRequest, pk: Any, what: str) -> Meeting:
    """The meeting for a chair-only action; anybody else taking part is refused (404)."""
    meeting = _meeting(request, pk, what, action=None)
    if meeting.chair_id != _user(request).pk:
        raise deny(
            _user(request), request=request, what=what, object_type="care.meeting", object_id=pk
        )
    return meeting


def _case(request: HttpRequest, pk: Any, what: str, *, action: str | None = None) -> MeetingCase:
    _clinician(request, what, object_id=pk)
    return get_case_for_user(
        _user(request),
        pk,
        request=request,
        action=action,
        queryset=MeetingCase.objects.select_related(
            "meeting", "meeting__chair", "meeting__consultation", "patient"
        ),
    )


def _back(meeting: Meeting, case: MeetingCase | None = None) -> HttpResponse:
    url = reverse("care:meeting", args=[meeting.pk])
    return redirect(f"{url}#case-{case.pk}" if case is not None else url)


# ---------------------------------------------------------------------------------------------
# Lists and scheduling


@login_required
@require_GET
def meetings(request: HttpRequest) -> HttpResponse:
    """The meetings I chair or take part in: coming ones, then past ones (paginated)."""
    user = _clinician(request, "meetings")
    mine = meetings_for_user(user)
    base = Meeting.objects.filter(pk__in=mine.values("pk")).select_related("chair")
    counted = base.annotate(
        case_count=Count("cases", distinct=True),
        people=Count("participants", distinct=True),
    )
    upcoming = list(counted.filter(status__in=OPEN).order_by("starts_at", "pk")[:PAGE_SIZE])
    past = paginate(
        request, counted.exclude(status__in=OPEN).order_by("-starts_at", "-pk"), PAGE_SIZE
    )
    context = {"upcoming": upcoming, "page": past, "past": list(past.object_list)}
    return render(request, "care/meetings/list.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def meeting_new(request: HttpRequest) -> HttpResponse:
    user = _clinician(request, "meeting-new")
    form = ScheduleForm(request.POST or None, colleagues=colleagues(user).exclude(pk=user.pk))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            meeting = do_schedule_meeting(
                user,
                title=data["title"],
                kind=data["kind"],
                starts_at=data["starts_at"],
                ends_at=data["ends_at"],
                participant_ids=[p.pk for p in data["participants"]],
                request=request,
            )
        except CareError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The meeting is scheduled; the participants are told."))
            return redirect("care:meeting", pk=meeting.pk)
    status = 400 if form.errors else 200
    return render(request, "care/meetings/form.html", {"form": form, "new": True}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def meeting_edit(request: HttpRequest, pk: int) -> HttpResponse:
    meeting = _chair(request, pk, "meeting-edit")
    initial = {
        "title": meeting.title,
        "kind": meeting.kind,
        "starts_at": timezone.localtime(meeting.starts_at),
        "ends_at": timezone.localtime(meeting.ends_at),
    }
    form = MeetingForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            do_edit_meeting(_user(request), meeting, **form.cleaned_data, request=request)
        except CareError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The meeting is updated."))
            return _back(meeting)
    status = 400 if form.errors else 200
    context = {"form": form, "meeting": meeting, "new": False}
    return render(request, "care/meetings/form.html", context, status=status)


# ---------------------------------------------------------------------------------------------
# The meeting page and its fragments


@login_required
@require_GET
def meeting(request: HttpRequest, pk: int) -> HttpResponse:
    item = _meeting(request, pk)
    return render(
        request, "care/meetings/detail.html", meeting_context(request, item, audit_cases_shown=True)
    )


@login_required
@require_GET
def meeting_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The live part of the page (participants, attendance, agenda), for `care.meeting` events."""
    item = _meeting(request, pk)
    context = meeting_context(request, item, audit_cases_shown=True)
    return render(request, "care/meetings/_live.html", context)


@login_required
@require_GET
def case_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    """One case of the agenda (question, summary, decision), for `care.meeting` events."""
    case = _case(request, pk, "meeting case", action="read")
    return render(request, "care/meetings/_case.html", case_context(request, case))


def _rerender(request: HttpRequest, meeting: Meeting, error: str, **drafts: Any) -> HttpResponse:
    """The meeting page again with the error and what was typed (nothing is lost)."""
    messages.error(request, error)
    context = meeting_context(request, meeting, audit_cases_shown=False, **drafts)
    return render(request, "care/meetings/detail.html", context, status=400)


# ---------------------------------------------------------------------------------------------
# Changes (POST → one service → back to the meeting page)


def _run(request: HttpRequest, meeting: Meeting, action: Any, done: str) -> HttpResponse:
    try:
        action()
    except CareError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done)
    return _back(meeting)


@login_required
@require_POST
def meeting_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    item = _chair(request, pk, "meeting-cancel")
    return _run(
        request,
        item,
        lambda: do_cancel_meeting(_user(request), item, request=request),
        _("The meeting is cancelled."),
    )


@login_required
@require_POST
def meeting_start(request: HttpRequest, pk: int) -> HttpResponse:
    item = _chair(request, pk, "meeting-start")
    return _run(
        request,
        item,
        lambda: do_start_meeting(_user(request), item, request=request),
        _("The meeting has started."),
    )


@login_required
@require_POST
def meeting_close(request: HttpRequest, pk: int) -> HttpResponse:
    item = _chair(request, pk, "meeting-close")
    return _run(
        request,
        item,
        lambda: do_close_meeting(_user(request), item, request=request),
        _("The meeting is closed."),
    )


@login_required
@require_POST
def participant_add(request: HttpRequest, pk: int) -> HttpResponse:
    item = _chair(request, pk, "meeting-participant")
    return _run(
        request,
        item,
        lambda: do_add_participant(
            _user(request), item, request.POST.get("user", ""), request=request
        ),
        _("The participant is invited."),
    )


@login_required
@require_POST
def participant_remove(request: HttpRequest, pk: int) -> HttpResponse:
    item = _chair(request, pk, "meeting-participant")
    return _run(
        request,
        item,
        lambda: do_remove_participant(
            _user(request), item, request.POST.get("user", ""), request=request
        ),
        _("The participant is removed."),
    )


@login_required
@require_POST
def attendance(request: HttpRequest, pk: int) -> HttpResponse:
    item = _chair(request, pk, "meeting-attendance")
    return _run(
        request,
        item,
        lambda: do_record_attendance(
            _user(request), item, request.POST.getlist("present"), request=request
        ),
        _("Attendance is recorded."),
    )


@login_required
@require_POST
def case_add(request: HttpRequest, pk: int) -> HttpResponse:
    """A participant puts one of their patients on the agenda (404 without record access)."""
    item = _meeting(request, pk, "meeting case", action=None)
    patient_id = request.POST.get("patient", "")
    question = request.POST.get("question", "")
    try:
        case = do_add_case(_user(request), item, patient_id, question, request=request)
    except CareError as error:
        return _rerender(request, item, str(error), case_draft={"question": question})
    messages.success(request, _("The case is on the agenda with a summary to review."))
    return _back(item, case)


@login_required
@require_POST
def case_move(request: HttpRequest, pk: int) -> HttpResponse:
    case = _case(request, pk, "meeting-agenda")
    if case.meeting.chair_id != _user(request).pk:
        raise deny(_user(request), request=request, what="meeting-agenda", object_id=pk)
    return _run(
        request,
        case.meeting,
        lambda: do_move_case(_user(request), case, request.POST.get("direction", "")),
        _("The agenda is reordered."),
    )


@login_required
@require_POST
def case_summary(request: HttpRequest, pk: int) -> HttpResponse:
    case = _case(request, pk, "meeting case")
    form = SummaryForm(request.POST)
    if not form.is_valid():
        problems = " ".join(str(m) for errors in form.errors.values() for m in errors)
        return _rerender(request, case.meeting, problems, summary_drafts={case.pk: request.POST})
    try:
        do_update_summary(
            _user(request),
            case,
            form.cleaned_data["summary"],
            question=form.cleaned_data["question"],
            request=request,
        )
    except CareError as error:
        return _rerender(request, case.meeting, str(error), summary_drafts={case.pk: request.POST})
    messages.success(request, _("The summary is saved."))
    return _back(case.meeting, case)


@login_required
@require_POST
def case_decision(request: HttpRequest, pk: int) -> HttpResponse:
    case = _case(request, pk, "meeting decision")
    text, actions = parse_decision(request.POST)
    try:
        do_record_decision(_user(request), case, text, actions, request=request)
    except CareError as error:
        drafts = {case.pk: {"text": text, "actions": actions}}
        return _rerender(request, case.meeting, str(error), decision_drafts=drafts)
    messages.success(request, _("The decision is recorded. The chair signs it."))
    return _back(case.meeting, case)


@login_required
@require_POST
def case_sign(request: HttpRequest, pk: int) -> HttpResponse:
    """The chair signs; anybody else taking part is refused (404, audited)."""
    case = _case(request, pk, "meeting-sign")
    if case.meeting.chair_id != _user(request).pk:
        raise deny(
            _user(request),
            request=request,
            what="meeting-sign",
            object_type="care.meetingcase",
            object_id=pk,
            patient_id=case.patient_id,
        )
    try:
        do_sign_decision(_user(request), case, request=request)
    except CareError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("The decision is signed and filed in the patient's record."))
    return _back(case.meeting, case)


@login_required
@require_POST
def meeting_video(request: HttpRequest, pk: int) -> HttpResponse:
    """Into the meeting's video room (a staff room, opened on first use)."""
    item = _meeting(request, pk, "meeting-video", action=None)
    try:
        room = do_open_meeting_room(item, _user(request), request=request)
    except CareError as error:
        messages.error(request, str(error))
        return _back(item)
    return redirect("teleconsult:room", room=room.room)
