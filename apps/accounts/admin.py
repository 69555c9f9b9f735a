from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from . import services
from .models import ApiToken, Invitation, Organization, User


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "gln", "phone", "email")
    search_fields = ("name", "gln")


class ApiTokenInline(admin.TabularInline):
    model = ApiToken
    extra = 0
    can_delete = False
    fields = ("prefix", "name", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ("email",)
    list_display = ("email", "first_name", "last_name", "role", "organization", "is_active")
    list_filter = ("role", "is_active", "organization")
    search_fields = ("email", "first_name", "last_name")
    readonly_fields = ("last_login", "date_joined", "is_staff")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (
            _("Person"),
            {"fields": ("first_name", "last_name", "phone", "preferred_language")},
        ),
        (_("Role"), {"fields": ("role", "profession", "organization")}),
        (
            _("Status"),
            {"fields": ("is_active", "is_staff", "is_superuser", "last_login", "date_joined")},
        ),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "email",
                    "first_name",
                    "last_name",
                    "role",
                    "profession",
                    "organization",
                    "preferred_language",
                    "phone",
                ),
                "description": _(
                    "Staff receive an invitation email with a one-time link to choose their "
                    "password; they must then set up two-factor login."
                ),
            },
        ),
    )
    inlines = [ApiTokenInline]
    actions = ["send_invitation", "deactivate"]

    def get_form(  # type: ignore[override]
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            # Invited accounts have no password until the invitation is accepted.
            from django import forms

            class AddForm(forms.ModelForm):
                class Meta:
                    model = User
                    fields = (
                        "email",
                        "first_name",
                        "last_name",
                        "role",
                        "profession",
                        "organization",
                        "preferred_language",
                        "phone",
                    )

            kwargs["form"] = AddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_inlines(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.inlines if obj is not None else []

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        deactivating = change and "is_active" in form.changed_data and not obj.is_active
        if not change:
            obj.set_unusable_password()
        if deactivating:
            obj.is_active = True  # the service flips it, revokes tokens and closes sockets
        super().save_model(request, obj, form, change)
        if deactivating:
            services.do_deactivate_user(obj, by=request.user, request=request)  # type: ignore[arg-type]
        if not change and obj.is_staff_member:
            services.do_invite_staff(obj, created_by=request.user, request=request)  # type: ignore[arg-type]
            self.message_user(request, _("Invitation sent to %s.") % obj.email, messages.SUCCESS)

    @admin.action(description=_("Send a new invitation email"))
    def send_invitation(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        sent = 0
        for user in queryset.filter(is_active=True):
            if user.is_staff_member:
                services.do_invite_staff(user, created_by=request.user, request=request)  # type: ignore[arg-type]
                sent += 1
        self.message_user(request, _("%d invitation(s) sent.") % sent)

    @admin.action(description=_("Deactivate (revoke tokens, close sessions)"))
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        for user in queryset.filter(is_active=True):
            services.do_deactivate_user(user, by=request.user, request=request)  # type: ignore[arg-type]
        self.message_user(request, _("Accounts deactivated."))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = (
        "prefix",
        "user",
        "name",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "user__email", "name")
    readonly_fields = ("user", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    fields = (
        "user",
        "name",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
    )
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Secrets are shown once: tokens are issued with `manage.py issue_token`.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description=_("Revoke selected tokens"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            services.do_revoke_token(token, by=request.user, request=request)  # type: ignore[arg-type]
        self.message_user(request, _("Tokens revoked."))


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("user", "created_by", "created_at", "expires_at", "used_at")
    readonly_fields = ("user", "created_by", "created_at", "expires_at", "used_at")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
