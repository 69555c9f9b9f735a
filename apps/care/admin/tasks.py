"""Admin of care coordination: tasks, read-only and metadata only.

Titles, instructions, reports, reasons and notes are the care team's clinical words:
administrators see who asked what kind of task of whom and when, never what it says. Opening a
task is audited against its patient.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext as _

from apps.audit.admin import ReadOnlyAdmin
from apps.audit.models import Action
from apps.audit.services import record as audit

from ..models import Task

METADATA = (
    "fhir_id",
    "patient",
    "kind",
    "status",
    "priority",
    "assignee",
    "assignee_role",
    "requester",
    "plan",
    "origin",
    "due_at",
    "created_at",
    "started_at",
    "completed_at",
    "completed_by",
    "overdue_notified_at",
    "updated_at",
)


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "patient",
        "kind",
        "status",
        "priority",
        "assignee",
        "assignee_role",
        "requester",
        "due_at",
        "created_at",
        "completed_at",
    )
    list_filter = ("status", "kind", "priority", "origin")
    list_select_related = ("patient", "assignee", "requester")
    date_hierarchy = "created_at"
    fields = METADATA
    readonly_fields = METADATA
    show_full_result_count = False

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        task = super().get_object(request, object_id, from_field)
        if task is not None:
            # The admin names the object by `str()`, the task's title: never saved from here.
            task.title = _("Task %(id)s") % {"id": task.pk}
        return task

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        patient_id = None
        if object_id.isdigit():
            patient_id = (
                Task.objects.filter(pk=int(object_id)).values_list("patient_id", flat=True).first()
            )
        audit(
            Action.READ,
            request=request,
            object_type="care.task",
            object_id=object_id,
            patient_id=str(patient_id or ""),
            detail={"what": "admin-care-task"},
        )
        return super().change_view(request, object_id, *args, **kwargs)
