"""A patient's care plan (FHIR CarePlan): goals, activities with a responsible professional
and due dates, follow-up interval. The whole care team works from the same plan.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from apps.core.fields import EncryptedTextField
from apps.core.models import FhirResource

from .common import ActivityKind, Origin

OPEN_PLAN_STATUSES = ("draft", "active", "on-hold")


class CarePlan(FhirResource):
    class Status(models.TextChoices):
        DRAFT = "draft", pgettext_lazy("care plan", "draft")
        ACTIVE = "active", pgettext_lazy("care plan", "active")
        ON_HOLD = "on-hold", pgettext_lazy("care plan", "on hold")
        COMPLETED = "completed", pgettext_lazy("care plan", "completed")
        REVOKED = "revoked", pgettext_lazy("care plan", "stopped")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="care_plans", db_index=False
    )
    pathway = models.ForeignKey(
        "care.Pathway",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="plans",
        verbose_name=_("pathway"),
    )
    # The pathway's version when the plan was built from it.
    pathway_version = models.PositiveIntegerField(null=True, blank=True, editable=False)
    title = models.CharField(_("title"), max_length=200)
    description = EncryptedTextField(_("description"), blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    start_date = models.DateField(_("start"), default=timezone.localdate)
    end_date = models.DateField(_("end"), null=True, blank=True)
    # The professional responsible for the plan as a whole.
    coordinator = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("coordinator"),
    )
    follow_up_days = models.PositiveSmallIntegerField(
        _("follow-up every (days)"), null=True, blank=True
    )
    next_follow_up = models.DateField(_("next follow-up"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("care plan")
        verbose_name_plural = _("care plans")
        indexes = [models.Index(fields=["patient", "status"])]
        constraints = [
            # One open plan per pathway per patient: a second would split the team's work.
            models.UniqueConstraint(
                fields=["patient", "pathway"],
                condition=Q(status__in=OPEN_PLAN_STATUSES) & Q(pathway__isnull=False),
                name="care_one_open_plan_per_pathway",
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="care_plan_end_after_start",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_PLAN_STATUSES


class Goal(models.Model):
    class Status(models.TextChoices):
        PROPOSED = "proposed", pgettext_lazy("goal", "proposed")
        ACTIVE = "active", pgettext_lazy("goal", "in progress")
        ACHIEVED = "achieved", pgettext_lazy("goal", "achieved")
        CANCELLED = "cancelled", pgettext_lazy("goal", "cancelled")

    plan = models.ForeignKey(CarePlan, on_delete=models.CASCADE, related_name="goals")
    description = models.CharField(_("goal"), max_length=300)
    measure = models.CharField(_("measured by (code)"), max_length=20, blank=True)
    target_low = models.DecimalField(
        _("target from"), max_digits=10, decimal_places=3, null=True, blank=True
    )
    target_high = models.DecimalField(
        _("target up to"), max_digits=10, decimal_places=3, null=True, blank=True
    )
    unit = models.CharField(_("unit"), max_length=30, blank=True)
    due_date = models.DateField(_("due"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = _("goal")
        verbose_name_plural = _("goals")
        ordering = ["plan", "order", "pk"]

    def __str__(self) -> str:
        return self.description


class Activity(models.Model):
    Kind = ActivityKind

    class Status(models.TextChoices):
        NOT_STARTED = "not-started", pgettext_lazy("activity", "to do")
        SCHEDULED = "scheduled", pgettext_lazy("activity", "scheduled")
        IN_PROGRESS = "in-progress", pgettext_lazy("activity", "in progress")
        COMPLETED = "completed", pgettext_lazy("activity", "done")
        CANCELLED = "cancelled", pgettext_lazy("activity", "cancelled")

    plan = models.ForeignKey(CarePlan, on_delete=models.CASCADE, related_name="activities")
    title = models.CharField(_("activity"), max_length=200)
    detail = models.CharField(_("detail"), max_length=500, blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=ActivityKind.choices)
    responsible = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("responsible"),
    )
    # When nobody is named: the profession expected to do it (accounts Role value).
    responsible_role = models.CharField(_("responsible profession"), max_length=20, blank=True)
    due_date = models.DateField(_("due"), null=True, blank=True)
    repeat_days = models.PositiveSmallIntegerField(_("then every (days)"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.NOT_STARTED
    )
    completed_at = models.DateTimeField(_("done on"), null=True, blank=True)
    origin = models.CharField(
        _("origin"), max_length=20, choices=Origin.choices, default=Origin.MANUAL
    )
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        verbose_name = _("care-plan activity")
        verbose_name_plural = _("care-plan activities")
        ordering = ["plan", "order", "due_date", "pk"]

    def __str__(self) -> str:
        return self.title
