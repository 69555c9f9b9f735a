"""Admin of decision support: rules (editing one saves its next version; parameters and reasons
validated per kind) and proposals (read-only, metadata only; opening one is audited against its
patient — its reason and data are the care team's, seen in the chart).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Max
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from apps.audit.admin import ReadOnlyAdmin
from apps.audit.models import Action
from apps.audit.services import record as audit

from ..forms_support import RuleAdminForm
from ..models import Proposal, Rule
from ..services.support.rules import do_save_rule_version


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    form = RuleAdminForm
    list_display = ("code", "version", "active", "kind", "severity", "action", "created_at")
    list_filter = ("active", "kind", "severity", "action")
    search_fields = ("code", "title", "title_en", "title_de")
    ordering = ("code", "-version")
    readonly_fields = ("version", "created_by", "created_at")

    def _is_latest(self, obj: Rule) -> bool:
        latest = Rule.objects.filter(code=obj.code).aggregate(latest=Max("version"))["latest"]
        return obj.version == latest

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Earlier versions are history (proposals point to them as they were): view only.
        if obj is not None and not self._is_latest(obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # proposals keep their rule; withdraw a rule by deactivating it

    def save_model(self, request: HttpRequest, obj: Rule, form: Any, change: bool) -> None:
        """Never update a version in place: save the next one (deactivating this one)."""
        saved = do_save_rule_version(form.rule_data, request.user)  # type: ignore[arg-type]
        obj.pk = saved.pk
        obj.refresh_from_db()


@admin.register(Proposal)
class ProposalAdmin(ReadOnlyAdmin):
    list_display = (
        "pk",
        "patient_ref",
        "rule_code",
        "rule_version",
        "status",
        "created_at",
        "decided_at",
    )
    list_filter = ("status", "rule_code")
    list_select_related = ("rule",)
    date_hierarchy = "created_at"
    fields = (
        "patient_ref",
        "rule",
        "rule_code",
        "fingerprint",
        "status",
        "created_at",
        "decided_by",
        "decided_at",
        "task_ref",
        "prescription_ref",
    )
    readonly_fields = fields

    @admin.display(description=_("patient (id)"), ordering="patient_id")
    def patient_ref(self, obj: Proposal) -> int:
        return obj.patient_id

    @admin.display(description=_("version"))
    def rule_version(self, obj: Proposal) -> int:
        return obj.rule.version

    @admin.display(description=_("task (id)"))
    def task_ref(self, obj: Proposal) -> Any:
        return obj.task_id or "—"

    @admin.display(description=_("prescription (id)"))
    def prescription_ref(self, obj: Proposal) -> Any:
        return obj.prescription_id or "—"

    def change_view(self, request: HttpRequest, object_id: str, *args: Any, **kwargs: Any) -> Any:
        patient_id = None
        if object_id.isdigit():
            patient_id = (
                Proposal.objects.filter(pk=int(object_id))
                .values_list("patient_id", flat=True)
                .first()
            )
        audit(
            Action.READ,
            request=request,
            object_type="care.proposal",
            object_id=object_id,
            patient_id=str(patient_id or ""),
            detail={"what": "admin-decision-support"},
        )
        return super().change_view(request, object_id, *args, **kwargs)
