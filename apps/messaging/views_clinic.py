"""The clinic's messaging pages: the triage inbox, a thread with the team's actions, and a
patient's conversations in their chart (with new staff discussions).

Only clinicians of the patient's care team reach a thread (`access.get_thread_for_user`);
anyone else, patients included, gets an audited 404 on these addresses.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.records.access import Via, deny, get_patient_for_user
from apps.records.views.common import tab_links

from .access import (
    ThreadAccess,
    audit_listing,
    get_attachment_for_user,
    get_thread_for_user,
    threads_for_user,
)
from .forms import AssignForm, FileForm, StaffThreadForm, UrgencyForm
from .models import Thread
from .services import MessagingError
from .services.attachments import do_file_attachment
from .services.threads import (
    do_mark_read,
    do_start_thread,
    team_members,
    thread_url,
)
from .services.triage import (
    do_assign,
    do_reopen,
    do_resolve,
    do_set_urgency,
)
from .views import PAGE_SIZE, thread_context, unread_ids

# (key, label): the inbox's tabs, in order; "open" is the default.
TABS: list[tuple[str, Any]] = [
    ("unassigned", gettext_lazy("Unassigned")),
    ("mine", gettext_lazy("Mine")),
    ("urgent", gettext_lazy("Urgent")),
    ("open", gettext_lazy("All open")),
    ("resolved", gettext_lazy("Resolved")),
]
DEFAULT_TAB = "open"
# The patient's page in the chart lists all their threads, open or not.
ALL = "all"


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _clinician_only(request: HttpRequest, what: str, **ids: Any) -> User:
    """The clinic's messaging is for clinicians; anyone else is refused (audited)."""
    user = _user(request)
    if not user.is_clinician:
        raise deny(user, request=request, what=what, **ids)
    return user


def _team_access(
    request: HttpRequest, pk: int, what: str, *, action: str | None = None
) -> ThreadAccess:
    user = _clinician_only(request, what, object_type="messaging.thread", object_id=pk)
    return get_thread_for_user(user, pk, request=request, what=what, action=action)


def tab_filter(tab: str, user: User) -> Q:
    """Which threads a tab of the inbox lists."""
    is_open = Q(state=Thread.State.OPEN)
    return {
        "unassigned": is_open & Q(assignee__isnull=True),
        "mine": is_open & Q(assignee=user),
        "urgent": is_open & Q(urgency=Thread.Urgency.URGENT),
        "resolved": Q(state=Thread.State.RESOLVED),
        ALL: Q(),
    }.get(tab, is_open)


def _tab(request: HttpRequest) -> str:
    tab = request.GET.get("tab", DEFAULT_TAB)
    return tab if tab in dict(TABS) or tab == ALL else DEFAULT_TAB


def inbox_rows(threads: QuerySet[Thread]) -> QuerySet[Thread]:
    return threads.select_related("patient", "assignee").order_by("-last_message_at", "-pk")


def _row_context(user: User, threads: list[Thread]) -> dict[str, Any]:
    return {
        "threads": threads,
        "unread": unread_ids(user, threads),
        "now": timezone.now(),
        "me": user,
    }


@require_GET
@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    user = _clinician_only(request, "messaging-inbox")
    tab = _tab(request)
    visible = threads_for_user(user)
    counts = visible.aggregate(
        **{key: Count("pk", filter=tab_filter(key, user)) for key, _label in TABS}
    )
    page = Paginator(inbox_rows(visible.filter(tab_filter(tab, user))), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = list(page.object_list)
    audit_listing(user, rows, request=request, what="messaging-inbox")
    tabs = [
        {
            "key": key,
            "label": label,
            "count": counts[key],
            "current": key == tab,
            "url": f"{reverse('messaging:inbox')}?tab={key}",
        }
        for key, label in TABS
    ]
    context = {"page": page, "tabs": tabs, **_row_context(user, rows), "tab": tab}
    return render(request, "messaging/inbox.html", context)


def inbox_row(request: HttpRequest, access: ThreadAccess) -> HttpResponse:
    """The inbox row of a thread the viewer may see (204 if it left the shown tab)."""
    tab = _tab(request)
    threads = Thread.objects.filter(pk=access.thread.pk).filter(tab_filter(tab, access.user))
    patient = request.GET.get("patient")
    if patient is not None:
        # The list of one patient's threads (in the chart) leaves the others out.
        threads = threads.filter(patient_id=patient) if patient.isdigit() else threads.none()
    threads = inbox_rows(threads)
    rows = list(threads)
    if not rows:
        return HttpResponse(status=204)
    context = {"thread": rows[0], **_row_context(access.user, rows)}
    return render(request, "messaging/_inbox_row.html", context)


@require_GET
@login_required
def clinic_thread(request: HttpRequest, pk: int) -> HttpResponse:
    access = _team_access(request, pk, "thread", action="read")
    do_mark_read(access, request=request)
    return render(request, "messaging/clinic_thread.html", thread_context(request, access))


def _back(access: ThreadAccess) -> HttpResponse:
    return redirect(thread_url(access.thread, access.user))


def _apply(request: HttpRequest, access: ThreadAccess, change: Any, done: str) -> HttpResponse:
    try:
        change()
    except MessagingError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done)
    return _back(access)


@require_POST
@login_required
def assign(request: HttpRequest, pk: int) -> HttpResponse:
    access = _team_access(request, pk, "assign")
    if request.POST.get("me"):
        assignee: Any = access.user.pk
    else:
        form = AssignForm(request.POST, team=team_members(access.thread))
        if not form.is_valid():
            messages.error(
                request, _("Only a clinician of the patient's care team can be assigned.")
            )
            return _back(access)
        assignee = form.cleaned_data["assignee"] or None
    return _apply(
        request,
        access,
        lambda: do_assign(access, assignee, request=request),
        _("The conversation is assigned.") if assignee else _("The conversation is unassigned."),
    )


@require_POST
@login_required
def set_urgency(request: HttpRequest, pk: int) -> HttpResponse:
    access = _team_access(request, pk, "urgency")
    form = UrgencyForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose routine or urgent."))
        return _back(access)
    urgency = form.cleaned_data["urgency"]
    return _apply(
        request,
        access,
        lambda: do_set_urgency(access, urgency, request=request),
        _("Marked urgent.") if urgency == Thread.Urgency.URGENT else _("Marked routine."),
    )


@require_POST
@login_required
def resolve(request: HttpRequest, pk: int) -> HttpResponse:
    access = _team_access(request, pk, "resolve")
    return _apply(
        request,
        access,
        lambda: do_resolve(access, request=request),
        _("The conversation is resolved."),
    )


@require_POST
@login_required
def reopen(request: HttpRequest, pk: int) -> HttpResponse:
    access = _team_access(request, pk, "reopen")
    return _apply(
        request,
        access,
        lambda: do_reopen(access, request=request),
        _("The conversation is open again."),
    )


@require_POST
@login_required
def file_attachment(request: HttpRequest, pk: int) -> HttpResponse:
    """File a message's file into the patient's record (one click)."""
    user = _clinician_only(
        request, "file-attachment", object_type="messaging.attachment", object_id=pk
    )
    item, access = get_attachment_for_user(user, pk, request=request)
    form = FileForm(request.POST)
    title = form.cleaned_data["title"] if form.is_valid() else ""
    try:
        do_file_attachment(access, item, title=title, request=request)
    except MessagingError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("“%(name)s” is filed in the record.") % {"name": item.filename})
    return redirect(thread_url(access.thread, user) + f"#message-{item.message_id}")


# ---------------------------------------------------------------------------------------------
# A patient's conversations, in the chart


def _patient_access(request: HttpRequest, patient_pk: int, what: str, action: str | None) -> Any:
    """The care team's access to the patient (an emergency access does not open messages)."""
    user = _clinician_only(request, what, object_id=patient_pk, patient_id=patient_pk)
    access = get_patient_for_user(user, patient_pk, request=request, what=what, action=action)
    if access.via != Via.CARE_TEAM:
        raise deny(user, request=request, what=what, object_id=patient_pk, patient_id=patient_pk)
    return access


def _render_patient_threads(
    request: HttpRequest,
    access: Any,
    forms: dict[str, StaffThreadForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    user = _user(request)
    team = [member for member in _team_of(access.patient.pk)]
    forms = forms or {}
    for kind in (StaffThreadForm.STAFF, StaffThreadForm.PATIENT):
        forms.setdefault(kind, StaffThreadForm(kind=kind, team=team, me=user))
    threads = inbox_rows(threads_for_user(user).filter(patient=access.patient))
    page = Paginator(threads, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    context = {
        "access": access,
        "patient": access.patient,
        "tabs": tab_links(access, "messages"),
        "tab": "messages",
        "is_patient_self": False,
        "page": page,
        "staff_form": forms[StaffThreadForm.STAFF],
        "patient_form": forms[StaffThreadForm.PATIENT],
        "has_account": access.patient.user_id is not None,
        **_row_context(user, rows),
    }
    return render(request, "messaging/patient_threads.html", context, status=status)


def _team_of(patient_pk: int) -> list[User]:
    # team_members only needs the patient of the thread.
    return team_members(Thread(patient_id=patient_pk))


@require_GET
@login_required
def patient_threads(request: HttpRequest, patient_pk: int) -> HttpResponse:
    access = _patient_access(request, patient_pk, "messaging-patient", action="read")
    return _render_patient_threads(request, access)


@require_http_methods(["POST"])
@login_required
def new_staff_thread(request: HttpRequest, patient_pk: int) -> HttpResponse:
    """Start a staff-only discussion about the patient, or a conversation with the patient."""
    access = _patient_access(request, patient_pk, "messaging-new", action=None)
    user = _user(request)
    kind = request.POST.get("kind")
    if kind not in (StaffThreadForm.STAFF, StaffThreadForm.PATIENT):
        kind = StaffThreadForm.STAFF
    form = StaffThreadForm(
        request.POST, request.FILES, kind=kind, team=_team_of(patient_pk), me=user
    )
    if form.is_valid():
        data = form.cleaned_data
        try:
            thread = do_start_thread(
                user,
                topic=data["topic"],
                subject=data["subject"],
                body=data["body"],
                files=form.all_files(),
                patient_id=access.patient.pk,
                mention_ids=data.get("mentions") or (),
                request=request,
            )
        except MessagingError as error:
            form.add_error(None, str(error))
        else:
            return redirect(thread_url(thread, user))
    return _render_patient_threads(request, access, {kind: form}, status=400)
