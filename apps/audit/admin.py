from django.contrib import admin
from django.http import HttpRequest

from .models import AuditCheckpoint, AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Administrators read the trail; nobody adds, changes or deletes through the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = (
        "seq",
        "occurred_at",
        "actor_label",
        "actor_role",
        "action",
        "outcome",
        "object_type",
        "object_id",
        "patient_id",
        "ip",
    )
    list_filter = ("action", "outcome", "actor_role", "occurred_at")
    search_fields = ("actor_label", "object_id", "patient_id", "ip")
    date_hierarchy = "occurred_at"
    show_full_result_count = False
    list_per_page = 100


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ("seq", "hash", "created_at")
