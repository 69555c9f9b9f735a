"""Clinical decision support: rules are data (admin-editable, versioned), proposals are what
they suggest for one patient, with the data they used. The system never applies a proposal:
a clinician accepts it (creating a task or a draft prescription) or dismisses it with a reason.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from .common import TaskKind, localized


class Rule(models.Model):
    """One version of a decision-support rule. Editing a rule saves a new version; proposals
    keep the version that made them. `parameters` depend on `kind` and are validated by
    `services.support.rules.check_parameters`.
    """

    class Kind(models.TextChoices):
        # A measurement stays above a target for N days on an unchanged treatment.
        SUSTAINED = "sustained", _("measurement above target for days")
        # Readings drift upward (mean of the recent window vs. the one before) → an exam.
        DRIFT = "drift", _("measurement drifting")
        # A drug of a class was started and the follow-up lab has not been done since.
        LAB_AFTER_DRUG = "lab-after-drug", _("lab check after starting a drug")
        # Two active drugs that interact (records DrugInteraction).
        INTERACTION = "interaction", _("drug–drug interaction")
        # An active drug against a recorded allergy.
        ALLERGY = "allergy", _("allergy conflict")
        # A dose outside the usual range for age, weight or renal function.
        DOSE_RANGE = "dose-range", _("dose outside the usual range")

    class Action(models.TextChoices):
        TASK = "task", _("create a task")
        PRESCRIPTION = "prescription", _("draft a prescription change")

    class Severity(models.TextChoices):
        INFO = "info", pgettext_lazy("proposal", "to consider")
        WARNING = "warning", pgettext_lazy("proposal", "recommended")
        CRITICAL = "critical", pgettext_lazy("proposal", "important")

    code = models.SlugField(_("code"), max_length=60)
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)
    active = models.BooleanField(_("active"), default=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    title = models.CharField(_("title (French)"), max_length=200)
    title_en = models.CharField(_("title (English)"), max_length=200, blank=True)
    title_de = models.CharField(_("title (German)"), max_length=200, blank=True)
    # Shown with each proposal; `{placeholders}` are filled from the evidence.
    rationale = models.TextField(_("reason (French)"))
    rationale_en = models.TextField(_("reason (English)"), blank=True)
    rationale_de = models.TextField(_("reason (German)"), blank=True)
    parameters = models.JSONField(_("parameters"), default=dict)
    severity = models.CharField(
        _("importance"), max_length=10, choices=Severity.choices, default=Severity.WARNING
    )
    action = models.CharField(
        _("on acceptance"), max_length=20, choices=Action.choices, default=Action.TASK
    )
    task_kind = models.CharField(
        _("task to create"), max_length=20, choices=TaskKind.choices, default=TaskKind.OTHER
    )
    # Source of the rule (guideline, reference) shown to clinicians.
    reference = models.CharField(_("reference"), max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("decision-support rule")
        verbose_name_plural = _("decision-support rules")
        ordering = ["code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["code", "version"], name="care_rule_version"),
            models.UniqueConstraint(
                fields=["code"], condition=Q(active=True), name="care_one_active_rule_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version})"

    def display_title(self, language: str | None = None) -> str:
        return localized(self, "title", language)

    def display_rationale(self, language: str | None = None) -> str:
        return localized(self, "rationale", language)


class Proposal(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", pgettext_lazy("proposal", "to review")
        ACCEPTED = "accepted", pgettext_lazy("proposal", "accepted")
        DISMISSED = "dismissed", pgettext_lazy("proposal", "dismissed")
        # The data no longer support it (treatment changed, lab done) before anyone decided.
        OUTDATED = "outdated", pgettext_lazy("proposal", "no longer applies")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="proposals", db_index=False
    )
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="proposals")
    # What the rule saw, so the same finding is proposed once (a dismissed finding is not
    # proposed again): e.g. the drug pair, or the treatment and the window's start.
    fingerprint = models.CharField(max_length=64)
    rule_code = models.SlugField(max_length=60)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.OPEN
    )
    # The rendered reason, in French / the evidence as data (rendered in any language):
    # {"summary": {...placeholders}, "observations": [{"id","code","label","value","unit","at"}],
    #  "medications": [{"id","name","dose","since"}], "allergies": [...], "patient": {...}}.
    evidence = models.JSONField(_("data used"), default=dict)
    created_at = models.DateTimeField(_("proposed"), default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    dismiss_reason = models.CharField(_("reason for dismissing"), max_length=300, blank=True)
    task = models.ForeignKey(
        "care.Task", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    prescription = models.ForeignKey(
        "records.Prescription", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("decision-support proposal")
        verbose_name_plural = _("decision-support proposals")
        indexes = [models.Index(fields=["patient", "status", "-created_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "rule_code", "fingerprint"],
                name="care_one_proposal_per_finding",
            ),
            models.CheckConstraint(
                condition=~Q(status="dismissed") | ~Q(dismiss_reason=""),
                name="care_dismissal_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_code} · {self.patient_id}"
