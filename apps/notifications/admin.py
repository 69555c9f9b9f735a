from django.contrib import admin

from .models import Delivery, Notification, Preference


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    readonly_fields = ("channel", "status", "attempts", "last_error", "sent_at")
    can_delete = False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("title", "user", "kind", "created_at", "read_at")
    list_filter = ("kind",)
    search_fields = ("user__email", "title")
    readonly_fields = ("user", "kind", "title", "body", "link", "created_at", "read_at")
    list_select_related = ("user",)
    inlines = [DeliveryInline]


@admin.register(Preference)
class PreferenceAdmin(admin.ModelAdmin):
    list_display = ("user", "kind", "email", "sms")
    list_select_related = ("user",)
