"""Video consultations in the admin: what happened, never what was said or recorded.

Administrators see a room's state, who came, the consents and the recordings' metadata (no
chat, no recording content: those are patient data, read through the record). Everything is
read-only but revoking guest invitations.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .models import Attendance, Consultation, GuestInvite, Recording, RecordingConsent
from .services.guests import revoke_invites


class _ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AttendanceInline(_ReadOnlyInline):
    model = Attendance
    fields = ("seat", "display_name", "first_seen_at", "admitted_at", "denied_at", "last_left_at")
    readonly_fields = fields


class ConsentInline(_ReadOnlyInline):
    model = RecordingConsent
    fields = ("seat", "user", "given_at", "withdrawn_at")
    readonly_fields = fields


class RecordingInline(_ReadOnlyInline):
    model = Recording
    fields = (
        "started_by",
        "started_at",
        "ended_at",
        "status",
        "content_type",
        "size",
        "chunks",
        "delete_after",
        "deleted_at",
    )
    readonly_fields = fields


@admin.register(Consultation)
class ConsultationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("room", "status", "urgent", "created_at", "started_at", "ended_at")
    list_filter = ("status", "urgent")
    search_fields = ("room",)
    date_hierarchy = "created_at"
    fields = (
        "room",
        "patient",
        "staff",
        "appointment",
        "opened_by",
        "urgent",
        "status",
        "encounter",
        "created_at",
        "started_at",
        "ended_at",
        "ended_by",
    )
    readonly_fields = fields
    inlines = (AttendanceInline, ConsentInline, RecordingInline)
    list_select_related = True

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GuestInvite)
class GuestInviteAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "relation", "consultation", "created_at", "expires_at", "used_at")
    list_filter = ("relation",)
    list_select_related = ("consultation",)
    search_fields = ("consultation__room",)
    fields = (
        "consultation",
        "name",
        "relation",
        "created_by",
        "created_at",
        "expires_at",
        "used_at",
        "revoked_at",
    )
    readonly_fields = fields
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Revoke the selected invitations"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[GuestInvite]) -> None:
        count = revoke_invites(
            queryset.select_related("consultation"),
            request.user,  # type: ignore[arg-type]
            request,
        )
        self.message_user(
            request,
            ngettext("%(n)s invitation revoked.", "%(n)s invitations revoked.", count)
            % {"n": count},
            messages.SUCCESS,
        )
