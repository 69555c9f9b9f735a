from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.accounts.models import CLINICAL_ROLES

from .models import DeadLetter, Device, DeviceMessage, OnCallShift


class _ReadOnly(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Devices are registered with `register_device` (which shows the secret once), not here."""

    list_display = ("device_id", "kind", "patient", "status", "last_seen_at", "battery")
    list_filter = ("kind", "status")
    search_fields = ("device_id", "serial")
    exclude = ("secret",)
    readonly_fields = (
        "device_id",
        "fhir_id",
        "patient",
        "status",
        "registered_by",
        "registered_at",
        "retired_at",
        "retired_by",
        "last_seen_at",
        "last_reading_at",
        "battery",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(DeviceMessage)
class DeviceMessageAdmin(_ReadOnly):
    list_display = ("device", "message_id", "measured_at", "received_at", "readings", "transport")
    list_filter = ("transport",)
    search_fields = ("device__device_id", "message_id")


@admin.register(DeadLetter)
class DeadLetterAdmin(_ReadOnly):
    list_display = ("received_at", "reason", "transport", "device_ref", "detail")
    list_filter = ("reason", "transport")
    search_fields = ("device_ref", "detail")
    exclude = ("raw",)
    readonly_fields = ("raw_preview",)

    @admin.display(description="raw payload (first 4 KiB)")
    def raw_preview(self, obj: DeadLetter) -> str:
        return bytes(obj.raw).decode("utf-8", errors="replace")


@admin.register(OnCallShift)
class OnCallShiftAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The on-call order alerts escalate along (thresholds and alerts live in the clinic pages:
    they are clinical data, which administrators do not see)."""

    list_display = ("user", "rank", "starts_at", "ends_at")
    list_filter = ("rank",)
    search_fields = ("user__email", "user__last_name")
    date_hierarchy = "starts_at"

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user":
            from apps.accounts.models import User

            kwargs["queryset"] = User.objects.filter(
                role__in=list(CLINICAL_ROLES), is_active=True
            ).order_by("last_name", "first_name")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
