"""What the platform sends the patient between visits: follow-up questionnaires (day 1, 3,
7… after surgery), satisfaction surveys after a consultation, and medication reminders whose
"taken"/"skipped" answers make the adherence record.

Every scheduled send has a natural key (`QuestionnaireRequest.key`, `DoseReminder`'s unique
line + time), so the Celery beat jobs that create them can run twice without duplicates.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from apps.core.models import FhirResource

from .common import localized


class Questionnaire(FhirResource):
    """A form definition (FHIR Questionnaire), edited by administrators.

    `items` is a list of questions: {"link_id", "text", "text_en", "text_de", "type"
    ("choice" | "integer" | "decimal" | "boolean" | "string" | "text"), "required",
    "options": [{"code", "display", "display_en", "display_de"}] (choice), "min", "max"
    (numbers), "alert": {"op": ">=" | "<=" | "=", "value"} (an answer the team must see)}.
    `services.questionnaires.check_items` validates it.
    """

    class Purpose(models.TextChoices):
        FOLLOW_UP = "follow-up", _("follow-up questionnaire")
        SATISFACTION = "satisfaction", _("satisfaction survey")

    class Status(models.TextChoices):
        DRAFT = "draft", pgettext_lazy("questionnaire", "draft")
        ACTIVE = "active", pgettext_lazy("questionnaire", "in use")
        RETIRED = "retired", pgettext_lazy("questionnaire", "retired")

    code = models.SlugField(_("code"), max_length=40, unique=True)
    title = models.CharField(_("title (French)"), max_length=200)
    title_en = models.CharField(_("title (English)"), max_length=200, blank=True)
    title_de = models.CharField(_("title (German)"), max_length=200, blank=True)
    purpose = models.CharField(_("purpose"), max_length=20, choices=Purpose.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE
    )
    items = models.JSONField(_("questions"), default=list)
    # How long the patient has to answer once it is sent.
    answer_within_days = models.PositiveSmallIntegerField(_("answer within (days)"), default=3)

    class Meta:
        verbose_name = _("questionnaire")
        verbose_name_plural = _("questionnaires")
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def display_title(self, language: str | None = None) -> str:
        return localized(self, "title", language)


class QuestionnaireRequest(models.Model):
    """One questionnaire due for one patient at one time (sent by the beat job)."""

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", pgettext_lazy("questionnaire request", "scheduled")
        SENT = "sent", pgettext_lazy("questionnaire request", "waiting for an answer")
        ANSWERED = "answered", pgettext_lazy("questionnaire request", "answered")
        EXPIRED = "expired", pgettext_lazy("questionnaire request", "not answered")
        CANCELLED = "cancelled", pgettext_lazy("questionnaire request", "cancelled")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="questionnaire_requests"
    )
    questionnaire = models.ForeignKey(Questionnaire, on_delete=models.PROTECT, related_name="+")
    plan = models.ForeignKey(
        "care.CarePlan",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="questionnaire_requests",
    )
    # The consultation a satisfaction survey is about.
    encounter = models.ForeignKey(
        "records.Encounter", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Natural key: "plan:<id>:<questionnaire>:day<N>", "encounter:<id>:<questionnaire>".
    key = models.CharField(max_length=120, unique=True)
    due_at = models.DateTimeField(_("due"))
    expires_at = models.DateTimeField(_("answer until"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.SCHEDULED
    )
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)

    class Meta:
        verbose_name = _("questionnaire to answer")
        verbose_name_plural = _("questionnaires to answer")
        indexes = [
            models.Index(fields=["status", "due_at"]),
            models.Index(fields=["patient", "status"]),
        ]

    def __str__(self) -> str:
        return self.key


class QuestionnaireResponse(FhirResource):
    patient = models.ForeignKey(
        "records.Patient",
        on_delete=models.CASCADE,
        related_name="questionnaire_responses",
        db_index=False,
    )
    questionnaire = models.ForeignKey(Questionnaire, on_delete=models.PROTECT, related_name="+")
    # The questionnaire's version the answers were given to.
    questionnaire_version = models.PositiveIntegerField()
    request = models.OneToOneField(
        QuestionnaireRequest,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="response",
    )
    # {link_id: value}; values are str, int, Decimal-as-str, bool or an option code.
    answers = models.JSONField(_("answers"), default=dict)
    authored_at = models.DateTimeField(_("answered"), default=timezone.now)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # An answer met a question's alert condition: the care team is told.
    flagged = models.BooleanField(_("needs attention"), default=False)

    class Meta:
        verbose_name = _("questionnaire response")
        verbose_name_plural = _("questionnaire responses")
        indexes = [models.Index(fields=["patient", "-authored_at"])]

    def __str__(self) -> str:
        return f"{self.questionnaire_id} · {self.authored_at:%Y-%m-%d}"


class CarePreferences(models.Model):
    """The patient's choices for reminders: their time zone, quiet hours and dose times."""

    patient = models.OneToOneField(
        "records.Patient", on_delete=models.CASCADE, related_name="care_preferences"
    )
    time_zone = models.CharField(_("time zone"), max_length=64, default="Europe/Zurich")
    medication_reminders = models.BooleanField(_("medication reminders"), default=True)
    # Times of day for 1, 2, 3, 4 doses a day are taken from these, in order:
    # e.g. ["08:00", "12:00", "18:00", "22:00"]; once a day is the first, twice the first and
    # third, and so on (services.reminders.dose_times).
    dose_times = models.JSONField(_("dose times"), default=list, blank=True)
    # Nothing is sent between these local times (a reminder falling in them waits for the end).
    quiet_start = models.TimeField(_("quiet from"), null=True, blank=True)
    quiet_end = models.TimeField(_("quiet until"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("reminder preferences")
        verbose_name_plural = _("reminder preferences")

    def __str__(self) -> str:
        return str(self.patient_id)


class DoseReminder(models.Model):
    """One planned dose of one prescription line, reminded, then answered (or missed)."""

    class Status(models.TextChoices):
        PLANNED = "planned", pgettext_lazy("dose", "planned")
        SENT = "sent", pgettext_lazy("dose", "reminded")
        TAKEN = "taken", pgettext_lazy("dose", "taken")
        SKIPPED = "skipped", pgettext_lazy("dose", "skipped")
        MISSED = "missed", pgettext_lazy("dose", "no answer")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="dose_reminders", db_index=False
    )
    line = models.ForeignKey(
        "records.MedicationRequest", on_delete=models.CASCADE, related_name="dose_reminders"
    )
    # The dose's time (aware, stored in UTC) and the patient's local wall time it stands for.
    scheduled_for = models.DateTimeField(_("dose time"))
    local_time = models.CharField(_("local time"), max_length=5)
    # When the reminder is (or was) sent: the dose time, or the end of the quiet hours.
    send_at = models.DateTimeField(_("remind at"))
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PLANNED
    )
    sent_at = models.DateTimeField(_("reminded"), null=True, blank=True)
    answered_at = models.DateTimeField(_("answered"), null=True, blank=True)
    skip_reason = models.CharField(_("reason"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("dose reminder")
        verbose_name_plural = _("dose reminders")
        indexes = [
            models.Index(fields=["status", "send_at"]),
            models.Index(fields=["patient", "-scheduled_for"]),
        ]
        constraints = [
            # The beat job may run twice; a dose is planned once.
            models.UniqueConstraint(
                fields=["line", "scheduled_for"], name="care_one_dose_per_time"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["taken", "skipped"]) | Q(answered_at__isnull=False),
                name="care_answered_dose_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.line_id} @ {self.scheduled_for:%Y-%m-%d %H:%M}"
