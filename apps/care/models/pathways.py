"""Care pathways: reference templates (heart failure, diabetes, post-operative follow-up,
COPD…) that a coordinator turns into a patient's care plan. Administrators edit them in the
admin; a plan keeps the pathway version it was built from.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from .common import ActivityKind, TaskKind, localized


class Pathway(models.Model):
    code = models.SlugField(_("code"), max_length=40, unique=True)
    name = models.CharField(_("name (French)"), max_length=120)
    name_en = models.CharField(_("name (English)"), max_length=120, blank=True)
    name_de = models.CharField(_("name (German)"), max_length=120, blank=True)
    description = models.TextField(_("description (French)"), blank=True)
    description_en = models.TextField(_("description (English)"), blank=True)
    description_de = models.TextField(_("description (German)"), blank=True)
    # Days between two follow-up consultations (empty: no planned follow-up).
    follow_up_days = models.PositiveSmallIntegerField(
        _("follow-up every (days)"), null=True, blank=True
    )
    # Remind the patient to take the medicines of their active prescriptions.
    medication_reminders = models.BooleanField(_("medication reminders"), default=True)
    # Sent to the patient after each consultation of a patient on this pathway.
    satisfaction_survey = models.ForeignKey(
        "care.Questionnaire",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("satisfaction survey after a consultation"),
    )
    active = models.BooleanField(_("active"), default=True)
    # Goes up at each change of the pathway or of its lines (services.pathways).
    version = models.PositiveIntegerField(_("version"), default=1)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("care pathway")
        verbose_name_plural = _("care pathways")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def display_name(self, language: str | None = None) -> str:
        return localized(self, "name", language)

    def display_description(self, language: str | None = None) -> str:
        return localized(self, "description", language)


class PathwayGoal(models.Model):
    pathway = models.ForeignKey(Pathway, on_delete=models.CASCADE, related_name="goals")
    description = models.CharField(_("goal (French)"), max_length=300)
    description_en = models.CharField(_("goal (English)"), max_length=300, blank=True)
    description_de = models.CharField(_("goal (German)"), max_length=300, blank=True)
    # A measurement code (records Concept code, e.g. LOINC 8480-6) the goal is measured by.
    measure = models.CharField(_("measured by (code)"), max_length=20, blank=True)
    target_low = models.DecimalField(
        _("target from"), max_digits=10, decimal_places=3, null=True, blank=True
    )
    target_high = models.DecimalField(
        _("target up to"), max_digits=10, decimal_places=3, null=True, blank=True
    )
    unit = models.CharField(_("unit"), max_length=30, blank=True)
    due_after_days = models.PositiveSmallIntegerField(_("due after (days)"), null=True, blank=True)
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("pathway goal")
        verbose_name_plural = _("pathway goals")
        ordering = ["pathway", "order", "pk"]

    def __str__(self) -> str:
        return self.description

    def clean(self) -> None:
        if (
            self.target_low is not None
            and self.target_high is not None
            and self.target_low > self.target_high
        ):
            raise ValidationError({"target_high": _("The upper target is below the lower one.")})

    def display_description(self, language: str | None = None) -> str:
        return localized(self, "description", language)


class PathwayActivity(models.Model):
    pathway = models.ForeignKey(Pathway, on_delete=models.CASCADE, related_name="activities")
    title = models.CharField(_("activity (French)"), max_length=200)
    title_en = models.CharField(_("activity (English)"), max_length=200, blank=True)
    title_de = models.CharField(_("activity (German)"), max_length=200, blank=True)
    detail = models.CharField(_("detail"), max_length=500, blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=ActivityKind.choices)
    # The profession responsible (accounts Role value); empty: the plan's coordinator.
    role = models.CharField(_("responsible profession"), max_length=20, blank=True)
    # Task.Kind of the task the activity creates (empty: the activity makes no task).
    task_kind = models.CharField(
        _("task to create"), max_length=20, choices=TaskKind.choices, blank=True
    )
    offset_days = models.PositiveSmallIntegerField(_("first due after (days)"), default=0)
    repeat_days = models.PositiveSmallIntegerField(_("then every (days)"), null=True, blank=True)
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("pathway activity")
        verbose_name_plural = _("pathway activities")
        ordering = ["pathway", "order", "pk"]

    def __str__(self) -> str:
        return self.title

    def display_title(self, language: str | None = None) -> str:
        return localized(self, "title", language)


class PathwayThreshold(models.Model):
    """A remote-monitoring limit the plan sets on the patient (a devices ThresholdRule)."""

    pathway = models.ForeignKey(Pathway, on_delete=models.CASCADE, related_name="thresholds")
    code = models.CharField(_("measurement"), max_length=20)
    kind = models.CharField(_("rule"), max_length=5)  # devices ThresholdRule.Kind
    limit = models.DecimalField(_("limit"), max_digits=10, decimal_places=4)
    # Rise and fall rules: the period the change is measured over (empty: the devices default).
    window = models.DurationField(
        _("within"), null=True, blank=True, help_text=_("Rise and fall rules only.")
    )
    # Empty: the devices default for the measurement and kind.
    hysteresis = models.DecimalField(
        _("hysteresis"), max_digits=10, decimal_places=4, null=True, blank=True
    )
    n_of = models.PositiveSmallIntegerField(_("readings out of range (N)"), default=1)
    m_of = models.PositiveSmallIntegerField(_("among the last (M)"), default=1)
    severity = models.CharField(_("severity"), max_length=8, default="warning")

    class Meta:
        verbose_name = _("pathway monitoring threshold")
        verbose_name_plural = _("pathway monitoring thresholds")
        ordering = ["pathway", "code", "kind"]

    def __str__(self) -> str:
        return f"{self.code} {self.kind} {self.limit}"

    def clean(self) -> None:
        if self.n_of > self.m_of:
            raise ValidationError({"n_of": _("N cannot be larger than M.")})


class PathwayQuestionnaire(models.Model):
    """A follow-up questionnaire sent on given days after the plan starts (day 1, 3, 7…)."""

    pathway = models.ForeignKey(Pathway, on_delete=models.CASCADE, related_name="questionnaires")
    questionnaire = models.ForeignKey(
        "care.Questionnaire", on_delete=models.PROTECT, related_name="+"
    )
    days = models.JSONField(_("days after the start"), default=list)

    class Meta:
        verbose_name = _("pathway questionnaire")
        verbose_name_plural = _("pathway questionnaires")

    def __str__(self) -> str:
        return f"{self.questionnaire} {self.days}"

    def clean(self) -> None:
        days: Any = self.days
        if (
            not isinstance(days, list)
            or not days
            or not all(isinstance(d, int) and 0 <= d <= 3650 for d in days)
        ):
            raise ValidationError(
                {"days": _("Give a list of whole days between 0 and 3650, e.g. [1, 3, 7].")}
            )
