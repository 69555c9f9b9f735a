"""Multidisciplinary meetings (RCP, tumour board): several professionals review patient cases
on an agenda, each case with a prepared summary, and record a decision. A signed decision is
immutable (model guard here, a PostgreSQL trigger in migration 0002), archived as a PDF in
the patient's record, and turned into care-plan activities and tasks.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from apps.core.fields import EncryptedTextField


class SignedDecisionError(Exception):
    """A signed decision cannot be changed or deleted."""


class Meeting(models.Model):
    class Kind(models.TextChoices):
        MULTIDISCIPLINARY = "multidisciplinary", _("multidisciplinary meeting")
        TUMOUR_BOARD = "tumour-board", _("tumour board")
        CASE_REVIEW = "case-review", _("case review")

    class Status(models.TextChoices):
        PLANNED = "planned", pgettext_lazy("meeting", "planned")
        IN_PROGRESS = "in-progress", pgettext_lazy("meeting", "in progress")
        CLOSED = "closed", pgettext_lazy("meeting", "closed")
        CANCELLED = "cancelled", pgettext_lazy("meeting", "cancelled")

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.PROTECT, related_name="+"
    )
    title = models.CharField(_("title"), max_length=200)
    kind = models.CharField(
        _("kind"), max_length=20, choices=Kind.choices, default=Kind.MULTIDISCIPLINARY
    )
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.PLANNED
    )
    chair = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("chair"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    # The video room (a staff room of apps.teleconsult), opened on first use.
    consultation = models.OneToOneField(
        "teleconsult.Consultation",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="meeting",
    )
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)

    class Meta:
        verbose_name = _("multidisciplinary meeting")
        verbose_name_plural = _("multidisciplinary meetings")
        ordering = ["-starts_at"]
        indexes = [models.Index(fields=["organization", "starts_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="care_meeting_ends_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.title


class MeetingParticipant(models.Model):
    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    invited_at = models.DateTimeField(default=timezone.now)
    # Recorded during the meeting: who was there when decisions were taken.
    attended = models.BooleanField(_("attended"), default=False)

    class Meta:
        verbose_name = _("meeting participant")
        verbose_name_plural = _("meeting participants")
        constraints = [
            models.UniqueConstraint(fields=["meeting", "user"], name="care_one_seat_per_person")
        ]

    def __str__(self) -> str:
        return f"{self.meeting_id} · {self.user_id}"


class MeetingCase(models.Model):
    """One patient on a meeting's agenda, with the question asked and a prepared summary."""

    class Status(models.TextChoices):
        PENDING = "pending", pgettext_lazy("meeting case", "to discuss")
        DECIDED = "decided", pgettext_lazy("meeting case", "decided")
        DEFERRED = "deferred", pgettext_lazy("meeting case", "deferred")

    meeting = models.ForeignKey(Meeting, on_delete=models.CASCADE, related_name="cases")
    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="meeting_cases"
    )
    order = models.PositiveSmallIntegerField(_("order"), default=0)
    question = models.CharField(_("question for the meeting"), max_length=500)
    summary = EncryptedTextField(_("case summary"), blank=True)
    presented_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("presented by"),
    )
    prepared_at = models.DateTimeField(_("summary prepared"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )

    class Meta:
        verbose_name = _("meeting case")
        verbose_name_plural = _("meeting cases")
        ordering = ["meeting", "order", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["meeting", "patient"], name="care_one_case_per_patient_per_meeting"
            )
        ]

    def __str__(self) -> str:
        return f"{self.meeting_id} · {self.patient_id}"


class MeetingDecision(models.Model):
    """What the meeting decided for a case. Once signed it never changes."""

    case = models.OneToOneField(MeetingCase, on_delete=models.CASCADE, related_name="decision")
    # Denormalised for access checks and the timeline (a decision is part of the record).
    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    text = EncryptedTextField(_("decision"))
    # The follow-up the meeting asked for, turned into plan activities and tasks at signing:
    # [{"title", "kind" (Task.Kind), "assignee" (user id or null), "role", "due_days"}].
    actions = models.JSONField(_("follow-up actions"), default=list, blank=True)
    # Who was present, frozen at signing: [{"id", "name", "profession"}].
    attendees = models.JSONField(_("present"), default=list, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(_("recorded"), default=timezone.now)
    signed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("signed by"),
    )
    signed_at = models.DateTimeField(_("signed"), null=True, blank=True)
    # SHA-256 of the signed content (text, actions, attendees, case, signer, time).
    signature = models.CharField(max_length=64, blank=True)
    # The archived PDF in the patient's record.
    document = models.ForeignKey(
        "records.DocumentReference",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("meeting decision")
        verbose_name_plural = _("meeting decisions")
        indexes = [models.Index(fields=["patient", "-recorded_at"])]

    def __str__(self) -> str:
        return f"{self.case_id} · {self.recorded_at:%Y-%m-%d}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Signing itself is the last allowed write: it is an update of an unsigned row.
        if not self._state.adding and self.pk is not None:
            stored = type(self).objects.filter(pk=self.pk).values_list("signed_at", flat=True)
            if stored and stored[0] is not None:
                raise SignedDecisionError("a signed decision cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if self.signed_at is not None:
            raise SignedDecisionError("a signed decision cannot be deleted")
        return super().delete(*args, **kwargs)

    @property
    def is_signed(self) -> bool:
        return self.signed_at is not None
