"""Case-management task pages: "My tasks" (practitioner portal), a task with its notes and
actions, and the patient's "Tasks" tab in the chart (where tasks and handovers are written),
plus the fragments the live updates fetch.

Tasks are the care team's: clinicians with access to the patient's record. Anyone else,
patients included, gets an audited 404 on every address here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, F, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.audit.services import record as audit
from apps.records.access import PatientAccess, deny
from apps.records.views.common import patient_access, render_chart

from .access import get_task_for_user, is_clinician, tasks_for_user
from .forms_tasks import AssignForm, CancelForm, CompleteForm, NoteForm, TaskForm
from .models import Task
from .models.tasks import OPEN_TASK_STATUSES
from .services import CareError
from .services.plans import open_plans
from .services.tasks import (
    CLOSED_TASK_STATUSES,
    do_add_task_note,
    do_assign_task,
    do_cancel_task,
    do_complete_task,
    do_create_task,
    do_put_on_hold,
    do_start_task,
    may_manage,
    overdue_first,
    profession_label,
    task_url,
    team_clinicians,
)

PAGE_SIZE = 25
MY_TABS: list[tuple[str, Any]] = [
    ("mine", gettext_lazy("Mine")),
    ("profession", gettext_lazy("For my profession")),
    ("created", gettext_lazy("Created by me")),
    ("done", gettext_lazy("Done")),
]
PATIENT_TABS: list[tuple[str, Any]] = [
    ("open", gettext_lazy("Open")),
    ("done", gettext_lazy("Done or cancelled")),
]
CHART_TAB = "care-tasks"
HISTORY_LABELS: dict[str, Any] = {
    "created": gettext_lazy("Created"),
    "claimed": gettext_lazy("Claimed"),
    "assigned": gettext_lazy("Handed over"),
    "started": gettext_lazy("Started"),
    "on-hold": gettext_lazy("Put on hold"),
    "completed": gettext_lazy("Done"),
    "cancelled": gettext_lazy("Cancelled"),
    "overdue": gettext_lazy("Overdue: reminder sent"),
}
ROW_RELATED = ("patient", "plan", "assignee", "requester", "completed_by")


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _clinician_only(request: HttpRequest, what: str) -> User:
    user = _user(request)
    if not is_clinician(user):
        raise deny(user, request=request, what=what)
    return user


def _is_open() -> Q:
    return Q(status__in=OPEN_TASK_STATUSES)


def my_tab_filter(tab: str, user: User) -> Q:
    """Which tasks a tab of "My tasks" lists."""
    closed = Q(status__in=CLOSED_TASK_STATUSES)
    return {
        "mine": _is_open() & Q(assignee=user),
        "profession": _is_open() & Q(assignee__isnull=True, assignee_role=user.role),
        "created": Q(requester=user),
        "done": closed & (Q(assignee=user) | Q(completed_by=user)),
    }[tab]


def patient_tab_filter(tab: str) -> Q:
    return _is_open() if tab == "open" else Q(status__in=CLOSED_TASK_STATUSES)


def _labelled(rows: list[Task]) -> list[Task]:
    """Rows carry their profession's label (`task.profession`) for the templates."""
    for task in rows:
        task.profession = profession_label(task.assignee_role)  # type: ignore[attr-defined]
    return rows


def _ordered(tasks: QuerySet[Task], tab: str) -> QuerySet[Task]:
    tasks = tasks.select_related(*ROW_RELATED)
    if tab == "done":
        return tasks.order_by(F("completed_at").desc(nulls_last=True), "-updated_at", "-pk")
    return overdue_first(tasks)


def _tab(request: HttpRequest, tabs: list[tuple[str, Any]]) -> str:
    tab = request.GET.get("tab", "")
    return tab if tab in dict(tabs) else tabs[0][0]


def _tab_links(
    base: str, tabs: list[tuple[str, Any]], current: str, counts: dict[str, int]
) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "label": label,
            "count": counts[key],
            "current": key == current,
            "url": f"{base}?tab={key}",
        }
        for key, label in tabs
    ]


def _audit_listing(user: User, rows: list[Task], request: HttpRequest, what: str) -> None:
    """One audit row for a page of tasks shown in a list (patients' names and task titles)."""
    patients = {task.patient_id for task in rows}
    audit(
        Action.READ,
        request=request,
        actor=user,
        object_type="care.task",
        patient_id=str(next(iter(patients))) if len(patients) == 1 else "",
        detail={"what": what, "count": len(rows), "patients": len(patients)},
    )


def _my_tabs(user: User, tab: str) -> list[dict[str, Any]]:
    visible = tasks_for_user(user)
    counts = visible.aggregate(
        **{key: Count("pk", filter=my_tab_filter(key, user)) for key, _label in MY_TABS}
    )
    return _tab_links(reverse("care:my_tasks"), MY_TABS, tab, counts)


def _patient_tabs(access: PatientAccess, tab: str) -> list[dict[str, Any]]:
    tasks = Task.objects.filter(patient=access.patient)
    counts = tasks.aggregate(
        **{key: Count("pk", filter=patient_tab_filter(key)) for key, _label in PATIENT_TABS}
    )
    base = reverse("care:patient_tasks", args=[access.patient.pk])
    return _tab_links(base, PATIENT_TABS, tab, counts)


# ---------------------------------------------------------------------------------------------
# My tasks


@require_GET
@login_required
def my_tasks(request: HttpRequest) -> HttpResponse:
    user = _clinician_only(request, "my-tasks")
    tab = _tab(request, MY_TABS)
    tasks = _ordered(tasks_for_user(user).filter(my_tab_filter(tab, user)), tab)
    page = Paginator(tasks, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = _labelled(list(page.object_list))
    _audit_listing(user, rows, request, "my-tasks")
    context = {
        "tab": tab,
        "tabs": _my_tabs(user, tab),
        "tabs_url": reverse("care:my_tasks_tabs"),
        "page": page,
        "tasks": rows,
        "now": timezone.now(),
        "me": user,
        "show_patient": True,
    }
    return render(request, "care/tasks/my_tasks.html", context)


@require_GET
@login_required
def my_tasks_tabs(request: HttpRequest) -> HttpResponse:
    """The tabs with their counts, for an open "My tasks" page told that a task changed."""
    user = _clinician_only(request, "my-tasks")
    tabs = _my_tabs(user, _tab(request, MY_TABS))
    return render(request, "care/tasks/_tabs.html", {"tabs": tabs})


@require_GET
@login_required
def task_row(request: HttpRequest, pk: int) -> HttpResponse:
    """A task's row in the viewer's list (`tab`, and `patient` for the chart); 204 if it left."""
    user = _user(request)
    task, access = get_task_for_user(user, pk, request=request)
    patient = request.GET.get("patient")
    if patient is not None:
        tab = _tab(request, PATIENT_TABS)
        rows = Task.objects.filter(pk=task.pk, patient_id=access.patient.pk)
        rows = (
            rows.filter(patient_tab_filter(tab)) if patient == str(task.patient_id) else rows.none()
        )
    else:
        tab = _tab(request, MY_TABS)
        rows = tasks_for_user(user).filter(pk=task.pk).filter(my_tab_filter(tab, user))
    found = _labelled(list(_ordered(rows, tab)))
    if not found:
        return HttpResponse(status=204)
    context = {"task": found[0], "now": timezone.now(), "me": user, "show_patient": not patient}
    return render(request, "care/tasks/_task_row.html", context)


# ---------------------------------------------------------------------------------------------
# One task


def task_history(task: Task) -> list[dict[str, Any]]:
    """When the task was created, handed over, started, done… read from the audit trail."""
    events = list(
        AuditEvent.objects.filter(
            patient_id=str(task.patient_id),
            object_type="care.task",
            object_id=str(task.pk),
            action__in=(Action.CREATE, Action.UPDATE),
        ).order_by("seq")[:200]
    )
    ids = {event.actor_id for event in events} | {event.detail.get("assignee") for event in events}
    users = {user.pk: user for user in User.objects.filter(pk__in=[i for i in ids if i])}
    history = []
    for event in events:
        change = "created" if event.action == Action.CREATE else event.detail.get("change", "")
        if change not in HISTORY_LABELS:
            continue
        actor = users.get(event.actor_id or 0)
        assignee = users.get(event.detail.get("assignee") or 0)
        role = event.detail.get("role") or ""
        history.append(
            {
                "at": event.occurred_at,
                "label": HISTORY_LABELS[change],
                "by": (actor.get_full_name() or actor.email) if actor else "",
                "to": (assignee.get_full_name() or assignee.email)
                if assignee
                else profession_label(role)
                if role and change in ("assigned", "claimed")
                else "",
            }
        )
    return history


def _task_queryset() -> QuerySet[Task]:
    return Task.objects.select_related(*ROW_RELATED, "activity")


def _live_context(task: Task, access: PatientAccess) -> dict[str, Any]:
    return {
        "task": task,
        "access": access,
        "patient": task.patient,
        "notes": list(task.notes.select_related("author")),
        "history": task_history(task),
        "now": timezone.now(),
        "me": access.user,
        "role_label": profession_label(task.assignee_role) if task.assignee_role else "",
    }


@require_GET
@login_required
def task_page(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    task, access = get_task_for_user(user, pk, request=request, queryset=_task_queryset())
    team = team_clinicians(task.patient_id)
    on_team = user.pk in {member.pk for member in team}
    mine_or_free = task.assignee_id in (None, user.pk)
    context = {
        **_live_context(task, access),
        "assign_form": AssignForm(team=[m for m in team if m.pk != user.pk], me=None),
        "complete_form": CompleteForm(),
        "cancel_form": CancelForm(),
        "note_form": NoteForm(),
        # What the page offers; the services decide again on submission.
        "may_claim": task.assignee_id is None and on_team,
        "may_start": task.status != Task.Status.IN_PROGRESS and mine_or_free and on_team,
        "may_complete": mine_or_free or task.requester_id == user.pk,
        "may_manage": may_manage(user, task),
        "may_hand_over": may_manage(user, task) or task.assignee_id is None,
    }
    return render(request, "care/tasks/task.html", context)


@require_GET
@login_required
def task_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The status, history and notes of a task, for its open page told that it changed."""
    user = _user(request)
    task, access = get_task_for_user(user, pk, request=request, queryset=_task_queryset())
    return render(request, "care/tasks/_task_live.html", _live_context(task, access))


def _act(
    request: HttpRequest, pk: int, change: Callable[[Task, PatientAccess], Any], done: str
) -> HttpResponse:
    """Run one change on the task (the service audits it) and go back to the task."""
    task, access = get_task_for_user(_user(request), pk, request=request, action=None)
    try:
        change(task, access)
    except CareError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, done)
    return redirect(task_url(task))


def _form_error(request: HttpRequest, pk: int, form: Any) -> HttpResponse:
    """An invalid action form: its first error, back on the task (access checked, audited)."""
    task, _access = get_task_for_user(_user(request), pk, request=request, action=None)
    errors = [str(error) for field in form.errors.values() for error in field]
    messages.error(request, errors[0] if errors else _("Check the form."))
    return redirect(task_url(task))


@require_POST
@login_required
def task_assign(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    if request.POST.get("me"):
        return _act(
            request,
            pk,
            lambda task, access: do_assign_task(access, task, user, request=request),
            _("The task is yours."),
        )
    task, _access = get_task_for_user(user, pk, request=request, action=None)
    form = AssignForm(request.POST, team=team_clinicians(task.patient_id), me=user)
    if not form.is_valid():
        return _form_error(request, pk, form)
    assignee, role = form.cleaned_data["assign_to"]
    return _act(
        request,
        pk,
        lambda task, access: do_assign_task(access, task, assignee, role, request=request),
        _("The task is handed over."),
    )


@require_POST
@login_required
def task_start(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda task, access: do_start_task(access, task, request=request),
        _("The task is in progress."),
    )


@require_POST
@login_required
def task_hold(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(
        request,
        pk,
        lambda task, access: do_put_on_hold(access, task, request=request),
        _("The task is on hold."),
    )


@require_POST
@login_required
def task_complete(request: HttpRequest, pk: int) -> HttpResponse:
    form = CompleteForm(request.POST)
    if not form.is_valid():
        return _form_error(request, pk, form)
    report = form.cleaned_data["report"]
    return _act(
        request,
        pk,
        lambda task, access: do_complete_task(access, task, report, request=request),
        _("The task is done."),
    )


@require_POST
@login_required
def task_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    form = CancelForm(request.POST)
    if not form.is_valid():
        return _form_error(request, pk, form)
    reason = form.cleaned_data["reason"]
    return _act(
        request,
        pk,
        lambda task, access: do_cancel_task(access, task, reason, request=request),
        _("The task is cancelled."),
    )


@require_POST
@login_required
def task_note(request: HttpRequest, pk: int) -> HttpResponse:
    form = NoteForm(request.POST)
    if not form.is_valid():
        return _form_error(request, pk, form)
    text = form.cleaned_data["text"]
    return _act(
        request,
        pk,
        lambda task, access: do_add_task_note(access, task, text, request=request),
        _("Your note is added; the other party is told."),
    )


# ---------------------------------------------------------------------------------------------
# The patient's tasks, in the chart


def _clinical_access(request: HttpRequest, patient_pk: int, what: str, action: Any) -> Any:
    """A clinician's access to the record (patients read theirs elsewhere; billing has none)."""
    access = patient_access(request, patient_pk, what, action=action)
    if not is_clinician(access.user):
        raise deny(access.user, request=request, what=what, object_id=patient_pk)
    return access


def _render_patient_tasks(
    request: HttpRequest, access: PatientAccess, form: TaskForm | None = None, status: int = 200
) -> HttpResponse:
    user = _user(request)
    tab = _tab(request, PATIENT_TABS)
    team = team_clinicians(access.patient.pk)
    if form is None:
        form = TaskForm(team=team, me=user, plans=list(open_plans(access.patient.pk)))
    tasks = _ordered(
        Task.objects.filter(patient=access.patient).filter(patient_tab_filter(tab)), tab
    )
    page = Paginator(tasks, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        # "tab" is the chart's own (render_chart): the list's tab has another name.
        "list_tab": tab,
        "task_tabs": _patient_tabs(access, tab),
        "tabs_url": reverse("care:patient_tasks_tabs", args=[access.patient.pk]),
        "page": page,
        "tasks": _labelled(list(page.object_list)),
        "form": form,
        "now": timezone.now(),
        "me": user,
        "show_patient": False,
    }
    return render_chart(
        request, access, CHART_TAB, "care/tasks/patient_tasks.html", context, status=status
    )


@require_GET
@login_required
def patient_tasks(request: HttpRequest, patient_pk: int) -> HttpResponse:
    access = _clinical_access(request, patient_pk, "care-tasks", Action.READ)
    return _render_patient_tasks(request, access)


@require_GET
@login_required
def patient_tasks_tabs(request: HttpRequest, patient_pk: int) -> HttpResponse:
    access = _clinical_access(request, patient_pk, "care-tasks", Action.READ)
    tabs = _patient_tabs(access, _tab(request, PATIENT_TABS))
    return render(request, "care/tasks/_tabs.html", {"tabs": tabs})


@require_POST
@login_required
def patient_task_new(request: HttpRequest, patient_pk: int) -> HttpResponse:
    """Write a task (or a handover) for a colleague or a profession of the care team."""
    access = _clinical_access(request, patient_pk, "care-task-new", None)
    user = _user(request)
    form = TaskForm(
        request.POST,
        team=team_clinicians(access.patient.pk),
        me=user,
        plans=list(open_plans(access.patient.pk)),
    )
    if form.is_valid():
        data = form.cleaned_data
        assignee, role = data["assign_to"]
        try:
            task = do_create_task(
                access,
                kind=data["kind"],
                title=data["title"],
                instructions=data["instructions"],
                assignee=assignee,
                assignee_role=role,
                priority=data["priority"],
                due_at=data["due_at"],
                plan=data["plan_obj"],
                request=request,
            )
        except CareError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The task is written; the team sees it."))
            return redirect(task_url(task))
    return _render_patient_tasks(request, access, form, status=400)
