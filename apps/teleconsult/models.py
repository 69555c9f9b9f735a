"""Video consultations: a room per video appointment (or an ad-hoc urgent room), the people
who entered it, invited guests, recording consents, the in-call chat and recordings.

A room without a patient is a *staff room* (a multidisciplinary meeting's video, opened by
apps.care): only the clinicians listed in `staff` enter it, directly, as clinicians; it has no
waiting room, no guests, no recording, and never becomes an Encounter.

A consultation becomes an Encounter (class VR) of the patient's record when the call really
starts, and the Encounter is finished with the call's real start and end.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.core.fields import EncryptedTextField


def new_room_code() -> str:
    """The room's name in URLs: random, so it says nothing about the patient or the volume."""
    return secrets.token_urlsafe(12)


class Consultation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("waiting room open")
        LIVE = "live", _("in progress")
        ENDED = "ended", _("ended")
        CANCELLED = "cancelled", _("cancelled")

    room = models.CharField(max_length=32, unique=True, default=new_room_code, editable=False)
    # None for a staff room (see the module docstring).
    patient = models.ForeignKey(
        "records.Patient",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="consultations",
    )
    # Who may enter a staff room (kept in sync by its owner, e.g. a meeting's participants).
    staff = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="+", verbose_name=_("staff")
    )
    appointment = models.OneToOneField(
        "scheduling.Appointment",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="consultation",
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    urgent = models.BooleanField(_("urgent"), default=False)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.OPEN
    )
    encounter = models.OneToOneField(
        "records.Encounter",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="consultation",
    )
    created_at = models.DateTimeField(_("opened"), default=timezone.now)
    # The call's real period: from the first moment patient and clinician were both admitted
    # and connected, to the end of the call.
    started_at = models.DateTimeField(_("call started"), null=True, blank=True)
    ended_at = models.DateTimeField(_("call ended"), null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("video consultation")
        verbose_name_plural = _("video consultations")
        indexes = [models.Index(fields=["patient", "-created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True)
                | Q(started_at__isnull=True)
                | Q(ended_at__gte=models.F("started_at")),
                name="consultation_ends_after_start",
            ),
            # A staff room is never an appointment's room nor an urgent call to a patient.
            models.CheckConstraint(
                condition=Q(patient__isnull=False) | Q(appointment__isnull=True, urgent=False),
                name="consultation_staff_room_has_no_appointment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} {self.room}"

    @property
    def is_staff_room(self) -> bool:
        return self.patient_id is None

    @property
    def patient_ref(self) -> str:
        """The patient's id for audit rows ("" for a staff room)."""
        return str(self.patient_id) if self.patient_id is not None else ""

    @property
    def is_closed(self) -> bool:
        return self.status in (self.Status.ENDED, self.Status.CANCELLED)

    @property
    def duration(self):  # type: ignore[no-untyped-def]
        if self.started_at and self.ended_at:
            return self.ended_at - self.started_at
        return None


class Seat(models.TextChoices):
    """What a person is in a room: it decides what they may do there."""

    CLINICIAN = "clinician", _("clinician")
    PATIENT = "patient", _("patient")
    GUEST = "guest", _("guest")


class GuestInvite(models.Model):
    """A single-use link for a third party (interpreter, relative, another clinician).

    Only the SHA-256 of the link's token is kept. The first browser that opens the link binds
    it to its session; the link then no longer works anywhere else. It expires at
    `expires_at`, or when revoked, or when the consultation ends.
    """

    class Relation(models.TextChoices):
        INTERPRETER = "interpreter", _("interpreter")
        FAMILY = "family", _("family member or carer")
        CLINICIAN = "clinician", _("another clinician")
        OTHER = "other", _("other")

    consultation = models.ForeignKey(Consultation, on_delete=models.CASCADE, related_name="invites")
    name = models.CharField(_("guest's name"), max_length=120)
    relation = models.CharField(_("relation"), max_length=20, choices=Relation.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)
    session_key_hash = models.CharField(max_length=64, blank=True, editable=False)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("guest invitation")
        verbose_name_plural = _("guest invitations")

    def __str__(self) -> str:
        return f"{self.name} ({self.get_relation_display()})"

    def is_valid(self, now: object = None) -> bool:
        moment = now or timezone.now()
        return self.revoked_at is None and self.expires_at > moment  # type: ignore[operator]


class Attendance(models.Model):
    """One person's presence in a room: waiting, admitted, left (one row per person)."""

    consultation = models.ForeignKey(
        Consultation, on_delete=models.CASCADE, related_name="attendances"
    )
    seat = models.CharField(max_length=10, choices=Seat.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    guest = models.ForeignKey(
        GuestInvite, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    display_name = models.CharField(max_length=150)
    first_seen_at = models.DateTimeField(default=timezone.now)
    admitted_at = models.DateTimeField(null=True, blank=True)
    admitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    denied_at = models.DateTimeField(null=True, blank=True)
    last_left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, guest__isnull=True)
                | Q(user__isnull=True, guest__isnull=False),
                name="attendance_user_or_guest",
            ),
            models.UniqueConstraint(
                fields=["consultation", "user"],
                condition=Q(user__isnull=False),
                name="attendance_one_per_user",
            ),
            models.UniqueConstraint(
                fields=["consultation", "guest"],
                condition=Q(guest__isnull=False),
                name="attendance_one_per_guest",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name


class RecordingConsent(models.Model):
    """A recorded yes to recording, by the patient or a clinician (withdrawal keeps the row)."""

    consultation = models.ForeignKey(
        Consultation, on_delete=models.CASCADE, related_name="consents"
    )
    seat = models.CharField(max_length=10, choices=Seat.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    given_at = models.DateTimeField(default=timezone.now)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("recording consent")
        verbose_name_plural = _("recording consents")
        constraints = [
            models.UniqueConstraint(
                fields=["consultation", "user"],
                condition=Q(withdrawn_at__isnull=True),
                name="one_active_consent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_seat_display()} {self.given_at:%Y-%m-%d %H:%M}"


class ChatMessage(models.Model):
    """A line of the in-call chat, kept with the consultation (text encrypted at rest)."""

    consultation = models.ForeignKey(
        Consultation, on_delete=models.CASCADE, related_name="chat_messages"
    )
    attendance = models.ForeignKey(Attendance, on_delete=models.PROTECT, related_name="+")
    sent_at = models.DateTimeField(default=timezone.now)
    text = EncryptedTextField(_("message"), blank=True)
    # An attached file, written encrypted by the records app's storage (`store_file`).
    filename = models.CharField(max_length=120, blank=True)
    content_type = models.CharField(max_length=60, blank=True)
    size = models.PositiveIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    storage_name = models.CharField(max_length=80, blank=True)
    key_id = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["sent_at", "pk"]
        indexes = [models.Index(fields=["consultation", "sent_at"])]

    def __str__(self) -> str:
        return f"{self.attendance} {self.sent_at:%H:%M}"


class Recording(models.Model):
    """A recording made in the clinician's browser, uploaded in encrypted chunks."""

    class Status(models.TextChoices):
        RECORDING = "recording", _("recording")
        COMPLETE = "complete", _("complete")
        DELETED = "deleted", _("deleted")

    consultation = models.ForeignKey(
        Consultation, on_delete=models.CASCADE, related_name="recordings"
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RECORDING)
    content_type = models.CharField(max_length=60, default="video/webm")
    size = models.PositiveBigIntegerField(default=0)
    chunks = models.PositiveIntegerField(default=0)
    delete_after = models.DateTimeField(_("deleted after"))
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("recording")
        verbose_name_plural = _("recordings")
        indexes = [models.Index(fields=["status", "delete_after"])]
        constraints = [
            models.UniqueConstraint(
                fields=["consultation"],
                condition=Q(status="recording"),
                name="one_running_recording",
            ),
        ]

    def __str__(self) -> str:
        return f"{self._meta.verbose_name} {self.started_at:%Y-%m-%d %H:%M}"


class RecordingChunk(models.Model):
    """One uploaded piece of a recording, sealed with the field-encryption keys on disk."""

    recording = models.ForeignKey(Recording, on_delete=models.CASCADE, related_name="parts")
    seq = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_name = models.CharField(max_length=80, unique=True)
    key_id = models.CharField(max_length=16)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recording", "seq"], name="recording_chunk_seq"),
        ]

    def __str__(self) -> str:
        return f"{self.recording_id}#{self.seq}"
