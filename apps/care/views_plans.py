"""Care-plan pages: the chart's "Care plan" tab (a patient's plans), the new-plan page (from a
pathway, with what it will create, or from scratch), and the plan page, which the care team
works from and the patient reads in plain words.

Every page reaches the patient through `patient_access` or `get_plan_for_user` (404 and an
audit row for anyone else); changes go through the plan services, which audit them and tell
the open pages (`care.plan`), where static/js/care-plan.js fetches the fresh sections.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Collection
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Case, F, IntegerField, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.devices.services.alerts import measurement_label
from apps.devices.views.thresholds import rule_in_words
from apps.records.access import PatientAccess, deny
from apps.records.models import Concept, Observation
from apps.records.services.care_team import current_members
from apps.records.views.common import paginate, patient_access, render_chart

from .access import get_plan_for_user
from .forms_plans import (
    SCRATCH,
    ActivityForm,
    ActivityStatusForm,
    FollowUpForm,
    GoalForm,
    GoalStatusForm,
    NewPlanForm,
    PlanStatusForm,
    measure_choices,
)
from .models import Activity, CarePlan, Goal, Pathway, Task
from .models.plans import OPEN_PLAN_STATUSES
from .models.tasks import OPEN_TASK_STATUSES
from .services import CareError
from .services.pathways import pathways_for_choice, threshold_fields
from .services.plans import (
    OPEN_ACTIVITY_STATUSES,
    annotated_progress,
    do_add_activity,
    do_add_goal,
    do_create_plan,
    do_create_plan_from_pathway,
    do_set_activity_status,
    do_set_follow_up,
    do_set_goal_status,
    do_set_plan_status,
    plan_progress,
    plan_url,
    with_progress,
)

TAB = "care-plans"
LOINC = "http://loinc.org"
CHART_DAYS = 30
CHART_POINTS = 120  # per goal: enough for a small chart, thinned evenly beyond
SERIES_ROWS = 5000  # readings read for the charts of one plan, at most
PLAN_TASKS = 50  # tasks shown on the plan page (the Tasks tab lists them all)
# Activities addressed to the patient: their detail is shown on the patient's page too.
PATIENT_FACING = (
    Activity.Kind.MONITORING,
    Activity.Kind.MEDICATION,
    Activity.Kind.EDUCATION,
    Activity.Kind.QUESTIONNAIRE,
    Activity.Kind.APPOINTMENT,
)


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def team_of(access: PatientAccess) -> list[User]:
    """The active clinicians of the patient's care teams (one query)."""
    seen: dict[int, User] = {}
    for member in current_members(access.patient):
        user = member.user
        if user.is_active and user.role in CLINICAL_ROLES:
            seen.setdefault(user.pk, user)
    return list(seen.values())


def role_label(role: str) -> str:
    return str(Role(role).label) if role in Role.values else role


# ---------------------------------------------------------------------------------------------
# The chart tab: the patient's plans


def _plans_of(access: PatientAccess) -> QuerySet[CarePlan]:
    open_first = Case(
        When(status__in=OPEN_PLAN_STATUSES, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return (
        with_progress(CarePlan.objects.filter(patient=access.patient))
        .select_related("pathway", "coordinator")
        .order_by(open_first, "-start_date", "-pk")
    )


@require_GET
@login_required
def patient_plans(request: HttpRequest, patient_pk: int) -> HttpResponse:
    access = patient_access(request, patient_pk, "care plans")
    page = paginate(request, _plans_of(access))
    rows = [{"plan": plan, "progress": annotated_progress(plan)} for plan in page.object_list]
    context = {"page": page, "rows": rows, "today": timezone.localdate()}
    return render_chart(request, access, TAB, "care/plans/patient_plans.html", context)


# ---------------------------------------------------------------------------------------------
# A new plan


def _pathway_preview(pathway: Pathway) -> dict[str, Any]:
    """What building a plan from `pathway` will create, in the reader's language."""
    return {
        "pathway": pathway,
        "name": pathway.display_name(),
        "description": pathway.display_description(),
        "goals": [goal.display_description() for goal in pathway.goals.all()],
        "activities": [
            {
                "title": line.display_title(),
                "who": role_label(line.role) if line.role else _("the coordinator"),
                "offset": line.offset_days,
                "repeat": line.repeat_days,
                "task": Task.Kind(line.task_kind).label if line.task_kind else "",
            }
            for line in pathway.activities.all()
        ],
        "thresholds": [
            {
                "code": line.code,
                "words": rule_in_words(
                    line.code, line.kind, line.limit, threshold_fields(line)["window"]
                ),
                "label": measurement_label(line.code),
            }
            for line in pathway.thresholds.all()
        ],
        "questionnaires": [
            {"title": line.questionnaire.display_title(), "days": line.days}
            for line in pathway.questionnaires.all()
        ],
    }


@require_http_methods(["GET", "POST"])
@login_required
def plan_new(request: HttpRequest, patient_pk: int) -> HttpResponse:
    posting = request.method == "POST"
    access = patient_access(
        request, patient_pk, "new care plan", action=None if posting else "read"
    )
    pathways = list(pathways_for_choice())
    team = team_of(access)
    form = NewPlanForm(request.POST if posting else None, pathways=pathways, team=team)
    if posting and form.is_valid():
        data = form.cleaned_data
        pathway = form.chosen_pathway()
        try:
            if pathway is not None:
                plan = do_create_plan_from_pathway(
                    access,
                    pathway,
                    start_date=data["start_date"],
                    coordinator=data["coordinator"],
                    title=data["title"],
                    request=request,
                )
            else:
                plan = do_create_plan(
                    access,
                    title=data["title"],
                    description=data["description"],
                    start_date=data["start_date"],
                    coordinator=data["coordinator"],
                    follow_up_days=data["follow_up_days"],
                    request=request,
                )
        except CareError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The care plan is created."))
            return redirect(plan_url(plan))
    context = {
        "form": form,
        "options": [{"value": str(p.pk), **_pathway_preview(p)} for p in pathways],
        "chosen": str(form["pathway"].value() or ""),
        "scratch": SCRATCH,
    }
    status = 400 if form.errors else 200
    return render_chart(request, access, TAB, "care/plans/plan_new.html", context, status)


# ---------------------------------------------------------------------------------------------
# The plan page


def _plan_queryset() -> QuerySet[CarePlan]:
    return CarePlan.objects.select_related("patient", "pathway", "coordinator")


def _thin(points: list[tuple[dt.datetime, Decimal]]) -> list[dict[str, Any]]:
    step = max(1, -(-len(points) // CHART_POINTS))
    kept = points[::step]
    if points and kept[-1] is not points[-1]:
        kept.append(points[-1])
    return [{"t": at.isoformat(), "v": float(value)} for at, value in kept]


def goal_rows(access: PatientAccess, goals: list[Goal]) -> list[dict[str, Any]]:
    """Each goal with the latest reading of its measurement and the last 30 days of readings
    (three queries, however many goals)."""
    codes = {goal.measure for goal in goals if goal.measure}
    concepts = (
        {c.code: c for c in Concept.objects.filter(system=LOINC, code__in=codes)} if codes else {}
    )
    latest: dict[int, Observation] = {}
    series: dict[int, list[tuple[dt.datetime, Decimal]]] = defaultdict(list)
    if concepts:
        readings = access.visible(Observation.objects.filter(code__in=concepts.values()))
        ranked = readings.annotate(
            rank=Window(RowNumber(), partition_by=[F("code_id")], order_by=F("effective_at").desc())
        ).filter(rank=1)
        latest = {obs.code_id: obs for obs in ranked}
        since = timezone.now() - dt.timedelta(days=CHART_DAYS)
        recent = (
            readings.filter(effective_at__gte=since)
            .order_by("-effective_at")
            .values_list("code_id", "effective_at", "value")[:SERIES_ROWS]
        )
        for code_id, at, value in reversed(list(recent)):
            series[code_id].append((at, value))
    rows = []
    for goal in goals:
        concept = concepts.get(goal.measure)
        reading = latest.get(concept.pk) if concept else None
        points = _thin(series[concept.pk]) if concept else []
        in_target = None
        if reading is not None and (goal.target_low is not None or goal.target_high is not None):
            in_target = (goal.target_low is None or reading.value >= goal.target_low) and (
                goal.target_high is None or reading.value <= goal.target_high
            )
        rows.append(
            {
                "goal": goal,
                "concept": concept,
                "latest": reading,
                "in_target": in_target,
                "chart_id": f"goal-series-{goal.pk}",
                "chart": {
                    "label": concept.label if concept else goal.measure,
                    "unit": concept.unit if concept else goal.unit,
                    "low": float(goal.target_low) if goal.target_low is not None else None,
                    "high": float(goal.target_high) if goal.target_high is not None else None,
                    "points": points,
                }
                if points
                else None,
            }
        )
    return rows


def activity_rows(
    activities: list[Activity], today: dt.date, with_tasks: Collection[int] = ()
) -> list[dict[str, Any]]:
    """Each activity with its responsible in words and its overdue flag. `with_tasks`: the
    activities that made tasks, whose detail is the task's instructions (the team's words)."""
    rows = []
    for activity in activities:
        is_open = activity.status in OPEN_ACTIVITY_STATUSES
        if activity.responsible is not None:
            who = activity.responsible.get_full_name() or activity.responsible.email
        elif activity.responsible_role:
            who = role_label(activity.responsible_role)
        else:
            who = _("the coordinator")
        rows.append(
            {
                "activity": activity,
                "who": who,
                "open": is_open,
                "overdue": is_open and activity.due_date is not None and activity.due_date < today,
                "patient_facing": activity.kind in PATIENT_FACING and activity.pk not in with_tasks,
            }
        )
    return rows


def _tasks_of(plan: CarePlan) -> list[Task]:
    open_first = Case(
        When(status__in=OPEN_TASK_STATUSES, then=Value(0)),
        default=Value(1),
        output_field=IntegerField(),
    )
    return list(
        plan.tasks.select_related("assignee").order_by(
            open_first, F("due_at").asc(nulls_last=True), "-pk"
        )[:PLAN_TASKS]
    )


def plan_context(access: PatientAccess, plan: CarePlan) -> dict[str, Any]:
    """What the plan's sections show (the page, and the fragment the live refresh fetches)."""
    today = timezone.localdate()
    goals = list(plan.goals.all())
    activities = list(plan.activities.select_related("responsible"))
    with_tasks: set[int] = set()
    if access.is_patient_self:
        with_tasks = set(
            Task.objects.filter(plan=plan, activity__isnull=False).values_list(
                "activity_id", flat=True
            )
        )
    context: dict[str, Any] = {
        "plan": plan,
        "progress": plan_progress(plan),
        "goals": goal_rows(access, goals),
        "activities": activity_rows(activities, today, with_tasks),
        "today": today,
        "sections_url": reverse("care:plan_sections", args=[plan.pk]),
    }
    if not access.is_patient_self:
        tasks = _tasks_of(plan)
        context["tasks"] = [
            {
                "task": task,
                "overdue": task.is_overdue(),
                "who": str(task.assignee)
                if task.assignee
                else _("any %(role)s") % {"role": role_label(task.assignee_role).lower()}
                if task.assignee_role
                else "—",
            }
            for task in tasks
        ]
        context["more_tasks"] = len(tasks) == PLAN_TASKS
        context["writable"] = plan.is_open
        context["goal_statuses"] = GoalStatusForm.base_fields["status"].choices  # type: ignore[attr-defined]
    return context


def _forms(access: PatientAccess, plan: CarePlan, **given: Any) -> dict[str, Any]:
    team = team_of(access)
    return {
        "goal_form": given.get("goal_form") or GoalForm(measures=measure_choices()),
        "activity_form": given.get("activity_form") or ActivityForm(team=team),
        "status_form": given.get("status_form") or PlanStatusForm(),
        "follow_up_form": given.get("follow_up_form")
        or FollowUpForm(
            initial={
                "follow_up_days": plan.follow_up_days,
                "next_follow_up": plan.next_follow_up,
            }
        ),
        "team": team,
    }


def _render_plan(
    request: HttpRequest, access: PatientAccess, plan: CarePlan, status: int = 200, **forms: Any
) -> HttpResponse:
    context = plan_context(access, plan)
    if access.is_patient_self:
        context["patient"] = access.patient
        return render(request, "care/plans/patient_plan.html", context, status=status)
    if plan.is_open:
        context.update(_forms(access, plan, **forms))
    return render_chart(request, access, TAB, "care/plans/plan.html", context, status)


@require_GET
@login_required
def plan(request: HttpRequest, pk: int) -> HttpResponse:
    found, access = get_plan_for_user(
        _user(request), pk, request=request, queryset=_plan_queryset()
    )
    return _render_plan(request, access, found)


@require_GET
@login_required
def plan_sections(request: HttpRequest, pk: int) -> HttpResponse:
    """The plan's sections alone, fetched by the open page when the plan changed."""
    found, access = get_plan_for_user(
        _user(request), pk, request=request, queryset=_plan_queryset()
    )
    template = (
        "care/plans/_patient_sections.html"
        if access.is_patient_self
        else "care/plans/_plan_sections.html"
    )
    context = plan_context(access, found)
    context.update({"patient": access.patient, "access": access})
    return render(request, template, context)


# ---------------------------------------------------------------------------------------------
# Changes


def _writer_plan(request: HttpRequest, pk: int, what: str) -> tuple[CarePlan, PatientAccess]:
    """The plan for a change: the patient reads their plan but changes nothing of it."""
    user = _user(request)
    found, access = get_plan_for_user(
        user, pk, request=request, action=None, queryset=_plan_queryset()
    )
    if access.is_patient_self:
        raise deny(
            user,
            request=request,
            what=what,
            object_type="care.careplan",
            object_id=pk,
            patient_id=found.patient_id,
        )
    return found, access


def _done(
    request: HttpRequest, plan: CarePlan, change: Any, success: str, anchor: str
) -> HttpResponse:
    try:
        change()
    except CareError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, success)
    return redirect(plan_url(plan) + anchor)


@require_POST
@login_required
def plan_status(request: HttpRequest, pk: int) -> HttpResponse:
    found, access = _writer_plan(request, pk, "care plan status")
    form = PlanStatusForm(request.POST)
    if not form.is_valid():
        return _render_plan(request, access, found, 400, status_form=form)
    data = form.cleaned_data
    try:
        do_set_plan_status(access, found, data["status"], data["reason"], request=request)
    except CareError as error:
        form.add_error(None, str(error))
        return _render_plan(request, access, found, 400, status_form=form)
    messages.success(request, _("The plan's status is changed."))
    return redirect(plan_url(found))


@require_POST
@login_required
def follow_up(request: HttpRequest, pk: int) -> HttpResponse:
    found, access = _writer_plan(request, pk, "care plan follow-up")
    form = FollowUpForm(request.POST)
    if form.is_valid():
        try:
            do_set_follow_up(
                access,
                found,
                follow_up_days=form.cleaned_data["follow_up_days"],
                next_follow_up=form.cleaned_data["next_follow_up"],
                request=request,
            )
        except CareError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The follow-up is changed."))
            return redirect(plan_url(found))
    return _render_plan(request, access, found, 400, follow_up_form=form)


@require_POST
@login_required
def goal_add(request: HttpRequest, pk: int) -> HttpResponse:
    found, access = _writer_plan(request, pk, "care plan goal")
    measures = measure_choices()
    form = GoalForm(request.POST, measures=measures)
    if form.is_valid():
        data = form.cleaned_data
        units = {c.code: c.unit for c in Concept.objects.filter(system=LOINC, code=data["measure"])}
        try:
            do_add_goal(
                access,
                found,
                description=data["description"],
                measure=data["measure"],
                target_low=data["target_low"],
                target_high=data["target_high"],
                unit=units.get(data["measure"], ""),
                due_date=data["due_date"],
                request=request,
            )
        except CareError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The goal is added."))
            return redirect(plan_url(found) + "#goals")
    return _render_plan(request, access, found, 400, goal_form=form)


@require_POST
@login_required
def activity_add(request: HttpRequest, pk: int) -> HttpResponse:
    found, access = _writer_plan(request, pk, "care plan activity")
    form = ActivityForm(request.POST, team=team_of(access))
    if form.is_valid():
        data = form.cleaned_data
        responsible, role = form.chosen_responsible()
        if responsible is None and not role:
            responsible = found.coordinator
        try:
            do_add_activity(
                access,
                found,
                title=data["title"],
                kind=data["kind"],
                detail=data["detail"],
                responsible=responsible,
                responsible_role=role,
                due_date=data["due_date"],
                repeat_days=data["repeat_days"],
                request=request,
            )
        except CareError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The activity is added."))
            return redirect(plan_url(found) + "#activities")
    return _render_plan(request, access, found, 400, activity_form=form)


@require_POST
@login_required
def goal_status(request: HttpRequest, pk: int, goal_pk: int) -> HttpResponse:
    found, access = _writer_plan(request, pk, "care plan goal")
    goal = found.goals.filter(pk=goal_pk).first()
    if goal is None:
        raise deny(
            access.user,
            request=request,
            what="care plan goal",
            object_type="care.goal",
            object_id=goal_pk,
            patient_id=found.patient_id,
        )
    goal.plan = found
    form = GoalStatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose achieved, cancelled or in progress."))
        return redirect(plan_url(found) + "#goals")
    status = form.cleaned_data["status"]
    return _done(
        request,
        found,
        lambda: do_set_goal_status(access, goal, status, request=request),
        _("The goal is updated."),
        "#goals",
    )


@require_POST
@login_required
def activity_status(request: HttpRequest, pk: int, activity_pk: int) -> HttpResponse:
    found, access = _writer_plan(request, pk, "care plan activity")
    activity = found.activities.filter(pk=activity_pk).first()
    if activity is None:
        raise deny(
            access.user,
            request=request,
            what="care plan activity",
            object_type="care.activity",
            object_id=activity_pk,
            patient_id=found.patient_id,
        )
    activity.plan = found
    form = ActivityStatusForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a status."))
        return redirect(plan_url(found) + "#activities")
    status = form.cleaned_data["status"]
    return _done(
        request,
        found,
        lambda: do_set_activity_status(access, activity, status, request=request),
        _("The activity is updated."),
        "#activities",
    )
