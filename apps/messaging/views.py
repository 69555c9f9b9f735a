"""Pages of the patient's conversations, and the pieces both sides share: posting a reply,
the read marker, the fragments the live updates fetch, and the attached files.

Every view reaches a thread through `access.get_thread_for_user` (or its message and attachment
variants): it audits the read, or the refusal with a 404. Changes go through the services;
their MessagingError is shown on the form, with what was typed kept.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import OuterRef, Prefetch, Q, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import Role, User
from apps.core.crypto import DecryptionError
from apps.records.access import deny

from .access import (
    ThreadAccess,
    audit_listing,
    get_attachment_for_user,
    get_message_for_user,
    get_thread_for_user,
    thread_access,
    threads_for_user,
)
from .forms import AssignForm, NewThreadForm, ReplyForm
from .models import Attachment, Message, Participant, Thread
from .services import MessagingError
from .services.attachments import open_attachment
from .services.threads import (
    do_mark_read,
    do_post_message,
    do_start_thread,
    patient_read_at,
    team_members,
    team_read_at,
    thread_url,
    unread_threads,
)

logger = logging.getLogger(__name__)

PAGE_SIZE = 25
# The newest messages a thread page shows; older ones are a link away.
MESSAGES_SHOWN = 50


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _wants_fragment(request: HttpRequest) -> bool:
    """The page's script posted the form and wants HTML to insert, not a redirect."""
    return request.headers.get("X-Requested-With") == "fetch"


def _patient_only(request: HttpRequest, what: str) -> None:
    """The portal's pages are the patient's; anyone else is refused (audited)."""
    if not _user(request).is_patient:
        raise deny(_user(request), request=request, what=what)


# ---------------------------------------------------------------------------------------------
# What the pages show


def messages_of(thread: Thread) -> QuerySet[Message]:
    """A thread's messages with what rendering them needs, in a fixed number of queries."""
    return (
        Message.objects.filter(thread=thread)
        .select_related("author")
        .prefetch_related(
            Prefetch("attachments", queryset=Attachment.objects.order_by("pk")),
            "mentions",
        )
    )


def shown_messages(thread: Thread, before: Any = None) -> tuple[list[Message], int | None]:
    """The newest messages (before the message `before`, for the earlier ones), oldest first,
    and the pk to ask for earlier ones when there are more."""
    rows = messages_of(thread).order_by("-sent_at", "-pk")
    if str(before or "").isdigit():
        anchor = Message.objects.filter(thread=thread, pk=before).values("sent_at").first()
        if anchor is not None:
            at = anchor["sent_at"]
            rows = rows.filter(Q(sent_at__lt=at) | Q(sent_at=at, pk__lt=int(before)))
    page = list(rows[: MESSAGES_SHOWN + 1])
    more = len(page) > MESSAGES_SHOWN
    page = page[:MESSAGES_SHOWN]
    page.reverse()
    return page, (page[0].pk if more and page else None)


def receipt(access: ThreadAccess, messages: list[Message] | None = None) -> dict[str, Any]:
    """The read receipt the viewer sees under their side's last message, if it was read.

    The patient sees when the team read their last message; the team sees when the patient
    read theirs (not in staff-only discussions).
    """
    thread = access.thread
    if messages is None:
        last = (
            Message.objects.filter(thread=thread, automatic=False)
            .order_by("-sent_at", "-pk")
            .select_related("author")
            .first()
        )
    else:
        last = next((m for m in reversed(messages) if not m.automatic), None)
    if last is None or last.author is None or thread.staff_only:
        return {}
    if last.author.is_patient != access.is_patient:
        return {}
    read_at = patient_read_at(thread) if access.is_staff else team_read_at(thread)
    if read_at is None or read_at < last.sent_at:
        return {"read_at": None, "message": last}
    return {"read_at": read_at, "message": last}


def thread_context(
    request: HttpRequest, access: ThreadAccess, form: ReplyForm | None = None
) -> dict[str, Any]:
    """What a thread page shows, for either side (the templates choose by `access.side`)."""
    thread = access.thread
    messages, earlier = shown_messages(thread, request.GET.get("before"))
    team = team_members(thread) if access.is_staff else None
    if form is None:
        form = ReplyForm(team=team, me=access.user)
    triage: dict[str, Any] = {}
    if team is not None:
        triage = {
            "assign_form": AssignForm(initial={"assignee": thread.assignee_id or ""}, team=team),
            "is_assigned_to_me": thread.assignee_id == access.user.pk,
        }
    return {
        **triage,
        "access": access,
        "thread": thread,
        "patient": thread.patient,
        "thread_messages": messages,
        "earlier": earlier,
        "form": form,
        "team": team or [],
        "receipt": receipt(access, messages),
        "now": timezone.now(),
        "overdue": thread.awaiting_team
        and thread.response_due_at is not None
        and thread.response_due_at < timezone.now(),
    }


def thread_template(access: ThreadAccess) -> str:
    return "messaging/clinic_thread.html" if access.is_staff else "messaging/thread.html"


def unread_ids(user: User, threads: list[Thread]) -> set[int]:
    """Which of these threads `user` has not read since someone else wrote (one query)."""
    if not threads:
        return set()
    pks = [thread.pk for thread in threads]
    return set(unread_threads(user).filter(pk__in=pks).values_list("pk", flat=True))


def with_team_read_at(threads: QuerySet[Thread]) -> QuerySet[Thread]:
    """Annotate when a member of the team last read each thread (the patient's receipt)."""
    latest = (
        Participant.objects.filter(thread=OuterRef("pk"), last_read_at__isnull=False)
        .exclude(user__role=Role.PATIENT)
        .order_by("-last_read_at")
        .values("last_read_at")[:1]
    )
    return threads.annotate(team_read_at=Subquery(latest))


# ---------------------------------------------------------------------------------------------
# The patient's pages


@require_GET
@login_required
def thread_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if user.is_clinician:
        return redirect("messaging:inbox")
    _patient_only(request, "messaging-list")
    threads = with_team_read_at(threads_for_user(user)).order_by("-last_message_at", "-pk")
    page = Paginator(threads, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    audit_listing(user, rows, request=request, what="messaging-list")
    return render(
        request,
        "messaging/thread_list.html",
        {
            "page": page,
            "threads": rows,
            "unread": unread_ids(user, rows),
            "has_record": hasattr(user, "patient_record"),
        },
    )


@require_http_methods(["GET", "POST"])
@login_required
def thread_new(request: HttpRequest) -> HttpResponse:
    _patient_only(request, "messaging-new")
    user = _user(request)
    form = NewThreadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            thread = do_start_thread(
                user,
                topic=data["topic"],
                subject=data["subject"],
                body=data["body"],
                files=form.all_files(),
                request=request,
            )
        except MessagingError as error:
            form.add_error(None, str(error))
        else:
            return redirect(thread_url(thread, user))
    status = 400 if form.errors else 200
    return render(request, "messaging/thread_new.html", {"form": form}, status=status)


@require_GET
@login_required
def thread_page(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    if user.is_staff_member:
        # The team reads threads in the clinic, whose page audits the read; here only a refusal.
        thread = Thread.objects.select_related("patient__user").filter(pk=pk).first()
        if thread is None or thread_access(user, thread) is None:
            raise deny(
                user,
                request=request,
                what="thread",
                object_type="messaging.thread",
                object_id=pk,
                patient_id=thread.patient_id if thread is not None else "",
            )
        return redirect("messaging:clinic_thread", pk=pk)
    access = get_thread_for_user(user, pk, request=request)
    do_mark_read(access, request=request)
    return render(request, "messaging/thread.html", thread_context(request, access))


# ---------------------------------------------------------------------------------------------
# Shared by both sides


@require_POST
@login_required
def post_reply(request: HttpRequest, pk: int) -> HttpResponse:
    access = get_thread_for_user(_user(request), pk, request=request, what="message", action=None)
    team = team_members(access.thread) if access.is_staff else None
    form = ReplyForm(request.POST, request.FILES, team=team, me=access.user)
    if form.is_valid():
        try:
            message = do_post_message(
                access,
                body=form.cleaned_data["body"],
                files=form.all_files(),
                mention_ids=form.cleaned_data.get("mentions") or (),
                request=request,
            )
        except MessagingError as error:
            form.add_error(None, str(error))
        else:
            if _wants_fragment(request):
                return _render_message(request, access, message.pk, status=201)
            return redirect(thread_url(access.thread, access.user) + f"#message-{message.pk}")
    if _wants_fragment(request):
        context = {"access": access, "thread": access.thread, "form": form}
        return render(request, "messaging/_reply_form.html", context, status=400)
    return render(
        request, thread_template(access), thread_context(request, access, form), status=400
    )


@require_POST
@login_required
def mark_read(request: HttpRequest, pk: int) -> HttpResponse:
    # Moving one's own read marker reveals nothing: only a refusal is audited.
    access = get_thread_for_user(_user(request), pk, request=request, what="read", action=None)
    do_mark_read(access, request=request)
    return HttpResponse(status=204)


def _render_message(
    request: HttpRequest, access: ThreadAccess, message_pk: int, *, status: int = 200
) -> HttpResponse:
    message = messages_of(access.thread).get(pk=message_pk)
    context = {"access": access, "thread": access.thread, "message": message}
    return render(request, "messaging/_message.html", context, status=status)


@require_GET
@login_required
def message_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    """One rendered message, for a page that was told of it live."""
    message, access = get_message_for_user(_user(request), pk, request=request)
    return _render_message(request, access, message.pk)


@require_GET
@login_required
def status_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    """The read receipt and expected answer time, for a page told live that they changed."""
    access = get_thread_for_user(_user(request), pk, request=request, what="thread-status")
    context = {"access": access, "thread": access.thread, "receipt": receipt(access)}
    return render(request, "messaging/_status.html", context)


@require_GET
@login_required
def thread_row(request: HttpRequest, pk: int) -> HttpResponse:
    """One row of the viewer's list, for a list that was told live that the thread changed.

    For the clinic's inbox, `tab` says which tab is shown: a thread that no longer belongs to
    it answers 204 and the list drops its row.
    """
    user = _user(request)
    access = get_thread_for_user(user, pk, request=request, what="thread-row")
    if access.is_staff:
        from .views_clinic import inbox_row

        return inbox_row(request, access)
    thread = with_team_read_at(Thread.objects.filter(pk=access.thread.pk)).get()
    context = {"thread": thread, "unread": unread_ids(user, [thread])}
    return render(request, "messaging/_thread_row.html", context)


# ---------------------------------------------------------------------------------------------
# Files


def _file_response(
    content: bytes, content_type: str, filename: str, *, inline: bool
) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    disposition = content_disposition_header(not inline, filename or "file")
    response["Content-Disposition"] = disposition or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    # Even if a browser were to render it as a page, nothing in it may run or load anything.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@require_GET
@login_required
def attachment(request: HttpRequest, pk: int) -> HttpResponse:
    """A message's file, decrypted: pictures shown inline, PDFs downloaded; `?thumb=1` for a
    picture's thumbnail."""
    item, _access = get_attachment_for_user(_user(request), pk, request=request)
    thumbnail = request.GET.get("thumb") == "1"
    if thumbnail and not item.thumbnail_name:
        raise Http404
    try:
        content = open_attachment(item, thumbnail=thumbnail)
    except (FileNotFoundError, DecryptionError):
        logger.exception("attachment %s: stored file missing or unreadable", item.pk)
        raise Http404 from None
    if thumbnail:
        stem = item.filename.rsplit(".", 1)[0] or "file"
        return _file_response(content, "image/jpeg", f"{stem}-thumbnail.jpg", inline=True)
    return _file_response(content, item.content_type, item.filename, inline=item.is_image)
