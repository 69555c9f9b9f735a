"""Secure messaging: conversations between a patient and their care team, and staff-only
case discussions about a patient.

A thread belongs to one patient. Its messages are FHIR Communications; their texts (and the
thread's subject) are encrypted at rest, and attached files are stored encrypted by the records
app. Each person who has taken part, read or been assigned or mentioned has a `Participant` row
holding their read marker.
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


class Topic(models.TextChoices):
    QUESTION = "question", _("Question")
    SYMPTOM = "symptom", _("Symptom")
    WOUND = "wound", _("Wound photo")
    RENEWAL = "renewal", _("Prescription renewal")
    ADMINISTRATIVE = "administrative", _("Administrative")
    CASE = "case", _("Case discussion")
    HANDOVER = "handover", _("Handover")


PATIENT_TOPICS = (Topic.QUESTION, Topic.SYMPTOM, Topic.WOUND, Topic.RENEWAL, Topic.ADMINISTRATIVE)
STAFF_TOPICS = (Topic.CASE, Topic.HANDOVER)


class Thread(FhirResource):
    class State(models.TextChoices):
        OPEN = "open", _("open")
        RESOLVED = "resolved", pgettext_lazy("conversation state", "resolved")

    class Urgency(models.TextChoices):
        ROUTINE = "routine", _("routine")
        URGENT = "urgent", _("urgent")

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="threads", db_index=False
    )
    topic = models.CharField(
        pgettext_lazy("conversation", "topic"), max_length=20, choices=Topic.choices
    )
    subject = EncryptedTextField(_("subject"))
    # A discussion among staff about the patient: the patient never sees it.
    staff_only = models.BooleanField(_("staff only"), default=False)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.OPEN)
    urgency = models.CharField(
        _("urgency"), max_length=10, choices=Urgency.choices, default=Urgency.ROUTINE
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assigned to"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(_("started"), default=timezone.now)
    last_message_at = models.DateTimeField(_("last message"), default=timezone.now)
    # The last message came from the patient: the thread awaits the team's answer.
    last_message_by_patient = models.BooleanField(default=False)
    message_count = models.PositiveIntegerField(default=0)
    # When the team should have answered (set while the thread awaits the team).
    response_due_at = models.DateTimeField(_("answer expected by"), null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("conversation")
        verbose_name_plural = _("conversations")
        ordering = ["-last_message_at", "-pk"]
        indexes = [
            models.Index(fields=["patient", "-last_message_at"], name="thread_patient_idx"),
            models.Index(fields=["assignee", "state"], name="thread_assignee_idx"),
            models.Index(fields=["state", "-last_message_at"], name="thread_state_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(staff_only=True, topic__in=[t.value for t in STAFF_TOPICS])
                | Q(staff_only=False, topic__in=[t.value for t in PATIENT_TOPICS]),
                name="thread_staff_only_topic",
            ),
            models.CheckConstraint(
                condition=Q(state="open", resolved_at__isnull=True)
                | Q(state="resolved", resolved_at__isnull=False),
                name="thread_resolved_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_topic_display()} #{self.pk}"

    @property
    def awaiting_team(self) -> bool:
        return self.state == self.State.OPEN and self.last_message_by_patient


class Participant(models.Model):
    """Someone who took part in, read, or was assigned or mentioned in a thread."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    joined_at = models.DateTimeField(default=timezone.now)
    last_read_at = models.DateTimeField(null=True, blank=True)
    # The last offline notification about this thread; none is sent again until they read.
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["thread", "user"], name="participant_unique"),
        ]
        indexes = [models.Index(fields=["user", "thread"], name="participant_user_idx")]

    def __str__(self) -> str:
        return f"{self.user} in {self.thread_id}"


class Message(FhirResource):
    """One message of a thread, published as a FHIR Communication."""

    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    # The thread's patient, copied so that FHIR searches and the timeline need no join.
    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # Null for the automatic reply sent outside opening hours.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    automatic = models.BooleanField(default=False)
    sent_at = models.DateTimeField(_("sent"), default=timezone.now)
    body = EncryptedTextField(_("message"), blank=True)
    mentions = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["sent_at", "pk"]
        indexes = [
            models.Index(fields=["thread", "sent_at"], name="message_thread_idx"),
            models.Index(fields=["patient", "sent_at"], name="message_patient_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(automatic=True) | Q(author__isnull=False), name="message_author"
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} of thread {self.thread_id}"


class Attachment(models.Model):
    """A file of a message, checked and stored encrypted by the records app (`store_file`)."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=120)
    content_type = models.CharField(max_length=60)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_name = models.CharField(max_length=80)
    thumbnail_name = models.CharField(max_length=80, blank=True)
    key_id = models.CharField(max_length=16, blank=True)
    # Set when a clinician filed it into the patient's record.
    document = models.ForeignKey(
        "records.DocumentReference",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    filed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    filed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.filename

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")
