"""Administration of secure messaging: the conversations' metadata, read-only.

Administrators keep the service running; they do not read patients' messages (least
privilege, as for the record's clinical content): subjects, message texts, mentions and file
names are never shown here, and nothing can be added, changed or deleted (the clinic pages do
that, through the access rule). Opening a conversation's or a message's page is audited.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.audit.admin import ReadOnlyAdmin
from apps.audit.models import Action
from apps.audit.services import record as audit

from .models import Message, Thread

THREAD_FIELDS = (
    "fhir_id",
    "patient",
    "topic",
    "staff_only",
    "state",
    "urgency",
    "assignee",
    "created_by",
    "created_at",
    "last_message_at",
    "message_count",
    "response_due_at",
    "resolved_at",
    "resolved_by",
)
MESSAGE_FIELDS = ("fhir_id", "thread", "patient", "author", "automatic", "sent_at", "files")


def _audit_opened(request: HttpRequest, model: type[Thread | Message], object_id: str) -> None:
    patient_id = None
    if object_id.isdigit():
        rows = model.objects.filter(pk=int(object_id))
        patient_id = rows.values_list("patient_id", flat=True).first()
    audit(
        Action.READ,
        request=request,
        object_type=model._meta.label_lower,
        object_id=object_id,
        patient_id=str(patient_id or ""),
        detail={"what": "admin-metadata"},
    )


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("sent_at", "author", "automatic")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("sent_at", "pk")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Thread)
class ThreadAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "patient",
        "topic",
        "staff_only",
        "state",
        "urgency",
        "assignee",
        "message_count",
        "last_message_at",
    )
    list_filter = ("topic", "staff_only", "state", "urgency")
    list_select_related = ("patient", "assignee")
    search_fields = ("patient__family_name", "patient__given_names")
    date_hierarchy = "last_message_at"
    show_full_result_count = False
    fields = THREAD_FIELDS
    readonly_fields = THREAD_FIELDS
    inlines = [MessageInline]

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        _audit_opened(request, Thread, object_id)
        return super().change_view(request, object_id, *args, **kwargs)


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "thread", "patient", "author", "automatic", "sent_at")
    list_filter = ("automatic",)
    list_select_related = ("thread", "patient", "author")
    date_hierarchy = "sent_at"
    show_full_result_count = False
    fields = MESSAGE_FIELDS
    readonly_fields = MESSAGE_FIELDS

    @admin.display(description=_("files"))
    def files(self, obj: Message) -> int:
        return obj.attachments.count()

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        _audit_opened(request, Message, object_id)
        return super().change_view(request, object_id, *args, **kwargs)
