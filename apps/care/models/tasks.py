"""Case-management tasks (FHIR Task): work one professional asks of another about a patient
(call the patient, change a dressing, review results), with assignee, due time, priority and
status, and the notes they pass each other (instructions, reports).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from apps.core.fields import EncryptedTextField
from apps.core.models import FhirResource

from .common import Origin, TaskKind

OPEN_TASK_STATUSES = ("requested", "in-progress", "on-hold")


class Task(FhirResource):
    Kind = TaskKind

    class Status(models.TextChoices):
        REQUESTED = "requested", pgettext_lazy("task", "to do")
        IN_PROGRESS = "in-progress", pgettext_lazy("task", "in progress")
        ON_HOLD = "on-hold", pgettext_lazy("task", "on hold")
        COMPLETED = "completed", pgettext_lazy("task", "done")
        CANCELLED = "cancelled", pgettext_lazy("task", "cancelled")

    class Priority(models.TextChoices):
        """FHIR request priorities, in increasing urgency."""

        ROUTINE = "routine", pgettext_lazy("priority", "routine")
        URGENT = "urgent", pgettext_lazy("priority", "urgent")
        ASAP = "asap", pgettext_lazy("priority", "as soon as possible")
        STAT = "stat", pgettext_lazy("priority", "immediately")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="care_tasks", db_index=False
    )
    plan = models.ForeignKey(
        "care.CarePlan",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tasks",
        verbose_name=_("care plan"),
    )
    activity = models.ForeignKey(
        "care.Activity", on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks"
    )
    kind = models.CharField(_("kind"), max_length=20, choices=TaskKind.choices)
    title = models.CharField(_("title"), max_length=200)
    instructions = EncryptedTextField(_("instructions"), blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.REQUESTED
    )
    priority = models.CharField(
        _("priority"), max_length=10, choices=Priority.choices, default=Priority.ROUTINE
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assigned to"),
    )
    # Unassigned tasks wait for anyone of this profession on the care team (accounts Role).
    assignee_role = models.CharField(_("for the profession"), max_length=20, blank=True)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("requested by"),
    )
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    completed_at = models.DateTimeField(_("done on"), null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("done by"),
    )
    # What the professional reports back when the task is done.
    report = EncryptedTextField(_("report"), blank=True)
    cancel_reason = models.CharField(_("reason for cancelling"), max_length=300, blank=True)
    origin = models.CharField(
        _("origin"), max_length=20, choices=Origin.choices, default=Origin.MANUAL
    )
    # Set when the overdue notice went out, so the scheduled check sends it once.
    overdue_notified_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        indexes = [
            models.Index(fields=["assignee", "status", "due_at"]),
            models.Index(fields=["patient", "status"]),
            models.Index(fields=["status", "due_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="completed") | Q(completed_at__isnull=False),
                name="care_task_completed_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TASK_STATUSES

    def is_overdue(self, now: dt.datetime | None = None) -> bool:
        moment = now or timezone.now()
        return self.is_open and self.due_at is not None and self.due_at < moment


class TaskNote(models.Model):
    """An instruction or report one professional leaves another on a task."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = EncryptedTextField(_("text"))
    created_at = models.DateTimeField(_("written"), default=timezone.now)

    class Meta:
        verbose_name = _("task note")
        verbose_name_plural = _("task notes")
        ordering = ["task", "created_at", "pk"]

    def __str__(self) -> str:
        return f"{self.task_id} · {self.created_at:%Y-%m-%d %H:%M}"
