"""Admin of the interop app: FHIR backend clients and (read-only) Bulk Data export jobs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import Application

from .fhir_api.oauth import (
    audit_client_secret,
    check_client_scopes,
    do_deactivate_fhir_client,
    do_reset_client_secret,
    new_client_application,
)
from .models import ExportJob, FhirClient


class FhirClientForm(forms.ModelForm):  # type: ignore[type-arg]
    name = forms.CharField(
        label=_("name"), max_length=255, help_text=_("The system's name, e.g. 'HIS Lausanne'.")
    )

    class Meta:
        model = FhirClient
        fields = ["name", "allowed_scopes", "organization", "active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["name"].initial = self.instance.application.name

    def clean_allowed_scopes(self) -> str:
        try:
            return check_client_scopes(self.cleaned_data["allowed_scopes"])
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None


def _show_secret(request: HttpRequest, client: FhirClient, secret: str) -> None:
    messages.warning(
        request,
        gettext(
            "Client {name}: client id {client_id}, secret {secret}. Copy the secret now: "
            "it is stored hashed and will not be shown again."
        ).format(name=client, client_id=client.application.client_id, secret=secret),
    )


@admin.register(FhirClient)
class FhirClientAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = FhirClientForm
    list_display = ["__str__", "client_id", "allowed_scopes", "organization", "active"]
    list_filter = ["active"]
    search_fields = ["application__name", "application__client_id"]
    readonly_fields = ["client_id", "created_at"]
    actions = ["reset_secret", "deactivate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FhirClient]:
        return super().get_queryset(request).select_related("application", "organization")

    @admin.display(description=_("client id"))
    def client_id(self, obj: FhirClient) -> str:
        return str(obj.application.client_id) if obj.pk else "—"

    def save_model(self, request: HttpRequest, obj: FhirClient, form: Any, change: bool) -> None:
        name = form.cleaned_data["name"]
        if change:
            obj.application.name = name
            obj.application.save(update_fields=["name", "updated"])
            obj.save()
            if "active" in form.changed_data and not obj.active:
                do_deactivate_fhir_client(obj, request=request)
            return
        application, secret = new_client_application(name)
        obj.application = application
        obj.save()
        audit_client_secret(obj, "fhir-client-created", request=request)
        _show_secret(request, obj, secret)

    @admin.action(description=_("Issue a new secret (the old one stops working)"))
    def reset_secret(self, request: HttpRequest, queryset: QuerySet[FhirClient]) -> None:
        clients = list(queryset.select_related("application"))
        for client in clients:
            _show_secret(request, client, do_reset_client_secret(client, request=request))
        self.message_user(
            request,
            ngettext("%d secret reset.", "%d secrets reset.", len(clients)) % len(clients),
        )

    @admin.action(description=_("Deactivate (revoke its tokens)"))
    def deactivate(self, request: HttpRequest, queryset: QuerySet[FhirClient]) -> None:
        for client in queryset.select_related("application"):
            do_deactivate_fhir_client(client, request=request)
        self.message_user(request, gettext("The selected clients were deactivated."))

    def delete_model(self, request: HttpRequest, obj: FhirClient) -> None:
        # The OAuth2 application goes too (with its tokens): a client's credentials must not
        # outlive it.
        obj.application.delete()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[FhirClient]) -> None:
        Application.objects.filter(fhir_client__in=queryset).delete()


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = [
        "id",
        "level",
        "status",
        "progress_percent",
        "requester",
        "resources_done",
        "resources_total",
        "created_at",
        "expires_at",
    ]
    list_filter = ["status", "level"]
    search_fields = ["requester"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "requester",
        "level",
        "group_id",
        "types",
        "since",
        "request_url",
        "status",
        "progress_percent",
        "resources_total",
        "resources_done",
        "error",
        "created_at",
        "started_at",
        "finished_at",
        "expires_at",
    ]
    exclude = ["caller"]

    @admin.display(description=_("progress"))
    def progress_percent(self, obj: ExportJob) -> str:
        return f"{obj.progress} %"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
