"""Which rows a caller may see: the same rules as the portals, applied to querysets.

A patient's token: their own compartment. A staff member's token: the patients of their care
teams and current emergency accesses, minus the sensitive categories their role may not see.
A system token: every row of the types its scopes name.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import CLINICAL_ROLES
from apps.records.access import patients_for_user, sensitivities_for
from apps.records.models import BreakGlassAccess, Patient

from .auth import PATIENT, SYSTEM, USER, Caller
from .registry import ResourceType


def visible_patients(caller: Caller) -> models.QuerySet[Patient]:
    """The patients whose compartment the caller may enter."""
    user = caller.user
    if caller.kind == SYSTEM:
        return Patient.objects.all()
    if user is None or not user.is_active:
        return Patient.objects.none()
    if caller.kind == PATIENT:
        return Patient.objects.filter(user=user)
    if caller.kind == USER and user.role in CLINICAL_ROLES:
        emergency = BreakGlassAccess.objects.filter(
            user=user, ended_at__isnull=True, expires_at__gt=timezone.now()
        ).values("patient_id")
        teams = patients_for_user(user).values("pk")
        return Patient.objects.filter(Q(pk__in=teams) | Q(pk__in=emergency))
    return Patient.objects.none()


def scoped(caller: Caller, rtype: ResourceType, model: type[models.Model]) -> models.QuerySet[Any]:
    queryset = rtype.queryset(model)
    if caller.kind == SYSTEM or rtype.patient_path is None:
        return queryset
    patients = visible_patients(caller).values("pk")
    if rtype.patient_path == "":
        queryset = queryset.filter(pk__in=patients)
    else:
        queryset = queryset.filter(**{f"{rtype.patient_path}__in": patients})
    if caller.kind == USER and caller.user is not None and _has_field(model, "sensitivity"):
        queryset = queryset.filter(sensitivity__in=sensitivities_for(caller.user))
    return queryset


def _has_field(model: type[models.Model], name: str) -> bool:
    return any(f.name == name for f in model._meta.get_fields())


def patient_of(rtype: ResourceType, obj: Any) -> Patient | None:
    if rtype.patient_path is None:
        return None
    if rtype.patient_path == "":
        return obj  # type: ignore[no-any-return]
    target: Any = obj
    for part in rtype.patient_path.split("__"):
        target = getattr(target, part, None)
    return target if isinstance(target, Patient) else None
