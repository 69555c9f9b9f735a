"""Admin of care coordination: multidisciplinary meetings, read-only and metadata only.

Administrators see when a meeting took place, who chaired it, who took part and how many
cases it had, never the patients' summaries, the questions or the decisions (those are read
through the meeting page by its participants, or in the patient's record).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.audit.admin import ReadOnlyAdmin
from apps.audit.models import Action
from apps.audit.services import record as audit

from ..models import Meeting, MeetingParticipant

METADATA = (
    "title",
    "kind",
    "status",
    "organization",
    "chair",
    "created_by",
    "created_at",
    "starts_at",
    "ends_at",
    "started_at",
    "closed_at",
    "consultation",
)


class ParticipantInline(admin.TabularInline):  # type: ignore[type-arg]
    model = MeetingParticipant
    fields = ("user", "invited_at", "attended")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Meeting)
class MeetingAdmin(ReadOnlyAdmin):
    list_display = ("title", "kind", "status", "starts_at", "chair", "case_count")
    list_filter = ("status", "kind")
    list_select_related = ("chair",)
    date_hierarchy = "starts_at"
    fields = METADATA
    readonly_fields = METADATA
    inlines = (ParticipantInline,)
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Meeting]:
        return super().get_queryset(request).annotate(cases_n=Count("cases", distinct=True))

    @admin.display(description=_("cases"), ordering="cases_n")
    def case_count(self, obj: Meeting) -> int:
        return int(getattr(obj, "cases_n", 0))

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        audit(
            Action.READ,
            request=request,
            object_type="care.meeting",
            object_id=object_id,
            detail={"what": "admin-care-meeting"},
        )
        return super().change_view(request, object_id, *args, **kwargs)
