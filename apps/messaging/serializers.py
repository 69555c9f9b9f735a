"""Serializers of the messaging API (`/api/v1/threads/`): conversations, messages, files.

Output serializers read what the views prepared (the caller, which threads are unread, the read
markers) from their context, so a page of threads costs a constant number of queries.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.accounts.models import Role

from .access import PATIENT_SIDE, TEAM_SIDE
from .models import PATIENT_TOPICS, Attachment, Message, Thread, Topic
from .services.threads import MAX_BODY, MAX_SUBJECT, thread_url

# ---------------------------------------------------------------------------------------------
# Out


class AttachmentSerializer(serializers.ModelSerializer[Attachment]):
    url = serializers.SerializerMethodField(help_text="Download (the API; audited).")
    thumbnail_url = serializers.SerializerMethodField(help_text="A small preview of a picture.")

    class Meta:
        model = Attachment
        fields = [
            "id",
            "filename",
            "content_type",
            "size",
            "is_image",
            "url",
            "thumbnail_url",
            "document",
        ]
        read_only_fields = fields
        extra_kwargs = {"document": {"help_text": "The record's document it was filed as."}}

    def get_url(self, attachment: Attachment) -> str:
        return reverse("api:messaging-file", args=[attachment.pk])

    @extend_schema_field(OpenApiTypes.STR)
    def get_thumbnail_url(self, attachment: Attachment) -> str | None:
        if not attachment.thumbnail_name:
            return None
        return reverse("api:messaging-file", args=[attachment.pk]) + "?thumb=1"


class MessageSerializer(serializers.ModelSerializer[Message]):
    author_name = serializers.SerializerMethodField()
    side = serializers.SerializerMethodField(
        help_text='"patient" or "team" (an automatic reply is the team\'s).'
    )
    mentions = serializers.SerializerMethodField(help_text="Ids of the colleagues mentioned.")
    attachments = AttachmentSerializer(many=True, read_only=True)

    class Meta:
        model = Message
        fields = [
            "id",
            "author",
            "author_name",
            "side",
            "automatic",
            "sent_at",
            "body",
            "mentions",
            "attachments",
        ]
        read_only_fields = fields

    def get_author_name(self, message: Message) -> str:
        return message.author.get_full_name() if message.author is not None else ""

    def get_side(self, message: Message) -> str:
        if message.author is not None and message.author.role == Role.PATIENT:
            return PATIENT_SIDE
        return TEAM_SIDE

    def get_mentions(self, message: Message) -> list[int]:
        return [user.pk for user in message.mentions.all()]


class ThreadSerializer(serializers.ModelSerializer[Thread]):
    """A conversation as the inboxes list it."""

    patient_name = serializers.CharField(source="patient.full_name", read_only=True)
    topic_label = serializers.CharField(source="get_topic_display", read_only=True)
    assignee_name = serializers.SerializerMethodField()
    awaiting_team = serializers.BooleanField(
        read_only=True, help_text="The last message is the patient's: the team should answer."
    )
    unread = serializers.SerializerMethodField(
        help_text="A message by somebody else came since the caller last read."
    )
    url = serializers.SerializerMethodField(help_text="The conversation's page.")

    class Meta:
        model = Thread
        fields = [
            "id",
            "patient",
            "patient_name",
            "topic",
            "topic_label",
            "subject",
            "staff_only",
            "state",
            "urgency",
            "assignee",
            "assignee_name",
            "created_at",
            "last_message_at",
            "message_count",
            "awaiting_team",
            "response_due_at",
            "resolved_at",
            "unread",
            "url",
        ]
        read_only_fields = fields

    def get_assignee_name(self, thread: Thread) -> str:
        return thread.assignee.get_full_name() if thread.assignee is not None else ""

    def get_unread(self, thread: Thread) -> bool:
        return thread.pk in self.context["unread"]

    def get_url(self, thread: Thread) -> str:
        return thread_url(thread, self.context["user"])


class ThreadDetailSerializer(ThreadSerializer):
    """A conversation with its messages and read receipts."""

    messages = serializers.SerializerMethodField()
    team_read_at = serializers.SerializerMethodField(
        help_text="When a member of the care team last read it (the patient's read receipt)."
    )
    patient_read_at = serializers.SerializerMethodField(
        help_text="When the patient last read it (the team's read receipt; null if staff-only)."
    )

    class Meta(ThreadSerializer.Meta):
        fields = [*ThreadSerializer.Meta.fields, "team_read_at", "patient_read_at", "messages"]
        read_only_fields = fields

    @extend_schema_field(MessageSerializer(many=True))
    def get_messages(self, thread: Thread) -> Any:
        return MessageSerializer(self.context["messages"], many=True, context=self.context).data

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_team_read_at(self, thread: Thread) -> str | None:
        return _instant(self.context["team_read_at"])

    @extend_schema_field(OpenApiTypes.DATETIME)
    def get_patient_read_at(self, thread: Thread) -> str | None:
        return _instant(self.context["patient_read_at"])


def _instant(value: Any) -> str | None:
    return serializers.DateTimeField().to_representation(value) if value is not None else None


class UnreadSerializer(serializers.Serializer):  # type: ignore[type-arg]
    threads = serializers.IntegerField(help_text="Conversations with unread messages.")


class ErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    detail = serializers.CharField(help_text="Why it was refused, in the caller's language.")


# ---------------------------------------------------------------------------------------------
# In


class MessageInSerializer(serializers.Serializer):  # type: ignore[type-arg]
    body = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        default="",
        help_text=f"Plain text, at most {MAX_BODY} characters (may be empty with files).",
    )
    mentions = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        help_text="Ids of care-team colleagues to mention (the team only).",
    )
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=False, use_url=False),
        required=False,
        default=list,
        help_text="Photos (JPEG, PNG) or PDFs, sent as multipart/form-data.",
    )


class ThreadInSerializer(MessageInSerializer):
    topic = serializers.ChoiceField(
        choices=Topic.choices,
        help_text=(
            "Patients: " + ", ".join(t.value for t in PATIENT_TOPICS) + ". The team: any "
            "(case and handover are staff-only discussions)."
        ),
    )
    subject = serializers.CharField(max_length=MAX_SUBJECT)
    patient = serializers.IntegerField(
        required=False, help_text="The patient (the team only; a patient writes about themself)."
    )


class AssignSerializer(serializers.Serializer):  # type: ignore[type-arg]
    assignee = serializers.IntegerField(
        allow_null=True, help_text="A clinician of the patient's care team, or null for nobody."
    )


class UrgencySerializer(serializers.Serializer):  # type: ignore[type-arg]
    urgency = serializers.ChoiceField(choices=Thread.Urgency.choices)


class ThreadQuerySerializer(serializers.Serializer):  # type: ignore[type-arg]
    state = serializers.ChoiceField(choices=Thread.State.choices, required=False)
    urgency = serializers.ChoiceField(choices=Thread.Urgency.choices, required=False)
    assigned = serializers.ChoiceField(
        choices=[("me", _("assigned to me")), ("none", _("assigned to nobody"))],
        required=False,
    )
    patient = serializers.IntegerField(required=False, help_text="One patient's conversations.")
