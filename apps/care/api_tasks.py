"""REST API of care coordination: tasks (`/api/v1/tasks/`); the other resources are in api.py."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.audit.models import Action
from apps.records.access import (
    PatientAccess,
    get_patient_for_user,
)

from .access import (
    get_task_for_user,
    my_tasks_filter,
    tasks_for_user,
)
from .api import NOT_FOUND, REFUSED, CareViewSet, colleague, refused
from .models import (
    Activity,
    CarePlan,
    Task,
    TaskNote,
)
from .models.tasks import OPEN_TASK_STATUSES
from .serializers import (
    CompleteSerializer,
    NoteInSerializer,
    ReasonSerializer,
    TaskAssignSerializer,
    TaskDetailSerializer,
    TaskInSerializer,
    TaskQuerySerializer,
    TaskSerializer,
)
from .services import CareError
from .services.tasks import (
    do_add_task_note,
    do_assign_task,
    do_cancel_task,
    do_complete_task,
    do_create_task,
    do_start_task,
    overdue_first,
)

# ---------------------------------------------------------------------------------------------
# Tasks


def _task_queryset() -> QuerySet[Task]:
    return Task.objects.select_related("patient", "assignee", "requester")


def _task_detail(pk: int, *, code: int = status.HTTP_200_OK) -> Response:
    task = (
        _task_queryset()
        .prefetch_related(
            Prefetch("notes", queryset=TaskNote.objects.select_related("author").order_by("pk"))
        )
        .get(pk=pk)
    )
    headers = {"Location": reverse("api:task-detail", args=[pk])} if code == 201 else {}
    data = TaskDetailSerializer(task, context={"now": timezone.now()}).data
    return Response(data, status=code, headers=headers)


class TaskViewSet(CareViewSet):
    serializer_class = TaskSerializer
    audience = ("clinician",)
    what = "api-tasks"

    def get_queryset(self) -> QuerySet[Task]:
        if getattr(self, "swagger_fake_view", False):
            return Task.objects.none()
        return _task_queryset()

    def _task(self, pk: str, *, audited: bool = False) -> tuple[Task, PatientAccess]:
        """The task through the care gate; `audited` for reads (services audit changes)."""
        self._gate()
        return get_task_for_user(
            self._user(),
            pk,
            request=self._http(),
            action=Action.READ if audited else None,
        )

    @extend_schema(
        parameters=[TaskQuerySerializer],
        responses={200: TaskSerializer(many=True), 404: NOT_FOUND},
        description=(
            "Tasks of the patients of the caller's care teams, overdue first, then by priority "
            "and due time. `mine=true`: open tasks assigned to me or waiting for my "
            "profession; `patient` names one patient (404, audited, if not theirs); `status` "
            "(`open` for requested, in progress or on hold), `priority`, `kind`, `overdue`."
        ),
    )
    def list(self, request: Request) -> Response:
        user = self._gate()
        query = TaskQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if "patient" in params:
            access = self._patient(params["patient"])
            tasks = self.get_queryset().filter(patient=access.patient)
        else:
            tasks = tasks_for_user(user).select_related("patient", "assignee", "requester")
        now = timezone.now()
        if params["mine"]:
            tasks = tasks.filter(my_tasks_filter(user), status__in=OPEN_TASK_STATUSES)
        if params.get("status") == "open":
            tasks = tasks.filter(status__in=OPEN_TASK_STATUSES)
        elif "status" in params:
            tasks = tasks.filter(status=params["status"])
        for name in ("priority", "kind"):
            if name in params:
                tasks = tasks.filter(**{name: params[name]})
        if params["overdue"]:
            tasks = tasks.filter(status__in=OPEN_TASK_STATUSES, due_at__lt=now)
        rows = self._page(overdue_first(tasks, now), "care.task")
        data = TaskSerializer(rows, many=True, context={"now": now}).data
        return self.get_paginated_response(data)

    @extend_schema(responses={200: TaskDetailSerializer, 404: NOT_FOUND})
    def retrieve(self, request: Request, pk: str) -> Response:
        task, _access = self._task(pk, audited=True)
        return _task_detail(task.pk)

    @extend_schema(
        request=TaskInSerializer,
        responses={201: TaskDetailSerializer, 400: REFUSED, 404: NOT_FOUND},
        description=(
            "Ask a task of a colleague of the patient's care team (`assignee`) or of anyone of "
            "a profession (`assignee_role`), optionally for a plan and one of its activities."
        ),
    )
    def create(self, request: Request) -> Response:
        self._gate()
        form = TaskInSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        access = get_patient_for_user(
            self._user(), data["patient"], request=self._http(), what=self.what, action=None
        )
        plan = activity = None
        if data["plan"] is not None:
            plan = CarePlan.objects.filter(pk=data["plan"], patient=access.patient).first()
            if plan is None:
                raise ValidationError({"plan": [_("No such plan for this patient.")]})
        if data["activity"] is not None:
            activity = Activity.objects.filter(pk=data["activity"], plan=plan).first()
            if activity is None:
                raise ValidationError({"activity": [_("No such activity in this plan.")]})
        try:
            task = do_create_task(
                access,
                kind=data["kind"],
                title=data["title"],
                instructions=data["instructions"],
                assignee=colleague(data["assignee"]),
                assignee_role=data["assignee_role"],
                priority=data["priority"],
                due_at=data["due_at"],
                plan=plan,
                activity=activity,
                request=self._http(),
            )
        except CareError as error:
            return refused(error)
        return _task_detail(task.pk, code=status.HTTP_201_CREATED)

    def _change(self, pk: str, change: Any) -> Response:
        task, access = self._task(pk)
        try:
            change(task, access)
        except CareError as error:
            return refused(error)
        return _task_detail(task.pk)

    @extend_schema(
        request=TaskAssignSerializer,
        responses={200: TaskDetailSerializer, 400: REFUSED, 404: NOT_FOUND},
        description=(
            "Hand the task to a colleague of the care team, claim it (yourself), or leave it "
            "to anyone of a profession (`assignee` null and `assignee_role`)."
        ),
    )
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str) -> Response:
        form = TaskAssignSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        assignee = colleague(data["assignee"])
        return self._change(
            pk,
            lambda task, access: do_assign_task(
                access, task, assignee, data["assignee_role"], request=self._http()
            ),
        )

    @extend_schema(
        request=None,
        responses={200: TaskDetailSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Start the task (an unassigned one is claimed), or resume it after a hold.",
    )
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        return self._change(
            pk, lambda task, access: do_start_task(access, task, request=self._http())
        )

    @extend_schema(
        request=CompleteSerializer,
        responses={200: TaskDetailSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Mark done with a report (required for reviews and handovers).",
    )
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, pk: str) -> Response:
        form = CompleteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        report = form.validated_data["report"]
        return self._change(
            pk,
            lambda task, access: do_complete_task(access, task, report, request=self._http()),
        )

    @extend_schema(
        request=ReasonSerializer,
        responses={200: TaskDetailSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Cancel a task no longer needed, with the reason.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        form = ReasonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        reason = form.validated_data["reason"]
        return self._change(
            pk,
            lambda task, access: do_cancel_task(access, task, reason, request=self._http()),
        )

    @extend_schema(
        request=NoteInSerializer,
        responses={200: TaskDetailSerializer, 400: REFUSED, 404: NOT_FOUND},
        description="Leave an instruction or a report for the other party of the task.",
    )
    @action(detail=True, methods=["post"])
    def notes(self, request: Request, pk: str) -> Response:
        form = NoteInSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        text = form.validated_data["text"]
        return self._change(
            pk, lambda task, access: do_add_task_note(access, task, text, request=self._http())
        )
