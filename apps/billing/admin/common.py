"""What the billing admin pages share: the audit of opened pages, validity periods."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.audit.models import Action
from apps.audit.services import record as audit


def audit_opened(request: HttpRequest, model: type[Any], object_id: str, patient_path: str) -> None:
    """Record that an administrator opened a page about a patient's billing."""
    patient_id = None
    if object_id.isdigit():
        rows = model.objects.filter(pk=int(object_id))
        patient_id = rows.values_list(patient_path, flat=True).first()
    audit(
        Action.READ,
        request=request,
        object_type=model._meta.label_lower,
        object_id=object_id,
        patient_id=str(patient_id or ""),
        detail={"what": "admin-billing"},
    )


def overlaps(
    rows: QuerySet[Any], instance: Any, valid_from: dt.date, valid_until: dt.date | None
) -> bool:
    """Whether another of `rows` is valid on some day of [valid_from, valid_until]."""
    if instance.pk is not None:
        rows = rows.exclude(pk=instance.pk)
    rows = rows.filter(Q(valid_until__isnull=True) | Q(valid_until__gte=valid_from))
    if valid_until is not None:
        rows = rows.filter(valid_from__lte=valid_until)
    return rows.exists()


class ValidityFilter(admin.SimpleListFilter):
    title = _("validity")
    parameter_name = "validity"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("now", _("valid today")), ("past", _("expired")), ("future", _("not yet valid"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        today = timezone.localdate()
        if self.value() == "now":
            return queryset.filter(valid_from__lte=today).filter(
                Q(valid_until__isnull=True) | Q(valid_until__gte=today)
            )
        if self.value() == "past":
            return queryset.filter(valid_until__lt=today)
        if self.value() == "future":
            return queryset.filter(valid_from__gt=today)
        return queryset
