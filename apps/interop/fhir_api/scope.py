"""Which rows a caller may see: the same rules as the portals, applied to querysets.

A patient's token: their own compartment. A staff member's token: the patients of their care
teams and current emergency accesses, minus the sensitive categories their role may not see.
A system token: every row of the types its scopes name. A billing staff member's token: the
administrative types only (`ADMINISTRATIVE_TYPES`: identity, insurance, codes, amounts; the
records rule `Level.ADMINISTRATIVE`) of the patients of their organisation; every other type is
closed to them.

For staff, rows are filtered on `patient_id IN (<granted patient ids>)`, one subquery over the
guardian grant tables and break-glass accesses, so that PostgreSQL can drive the search from the
(patient, ...) indexes instead of joining Patient for every row.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.records.access import ACCESS_PERMISSION, sensitivities_for
from apps.records.models import (
    BreakGlassAccess,
    MedicationRequest,
    Patient,
    PatientGroupObjectPermission,
    PatientUserObjectPermission,
    Prescription,
    Sensitivity,
)

from .auth import PATIENT, SYSTEM, USER, Caller
from .registry import ResourceType
from .search import with_related

_CODENAME = ACCESS_PERMISSION.split(".")[1]

# The types that hold administrative data only, which billing staff read (never notes,
# observations or any other clinical type).
ADMINISTRATIVE_TYPES = frozenset({"Patient", "Coverage", "ChargeItem", "Invoice", "Claim"})


def _grants(user: User) -> tuple[models.QuerySet[Any], ...]:
    """The patient ids `user` may open, one queryset per way of getting access: care-team
    grants (own or through a group) and unexpired break-glass accesses."""
    # These grant tables hold Patient permissions only, so the codename alone names the
    # permission (no join on content types: it halves the planning time of every search).
    direct = PatientUserObjectPermission.objects.filter(
        user=user, permission__codename=_CODENAME
    ).values_list("content_object_id", flat=True)
    groups = User.groups.through.objects.filter(user_id=user.pk).values("group_id")
    grouped = PatientGroupObjectPermission.objects.filter(
        group_id__in=groups, permission__codename=_CODENAME
    ).values_list("content_object_id", flat=True)
    emergency = BreakGlassAccess.objects.filter(
        user=user, ended_at__isnull=True, expires_at__gt=timezone.now()
    ).values_list("patient_id", flat=True)
    return direct, grouped, emergency


def granted_patient_ids(user: User) -> models.QuerySet[Any]:
    """Ids of the patients `user` may open: the same set as `patients_for_user` plus
    break-glass."""
    direct, grouped, emergency = _grants(user)
    # One UNION subquery: an OR of IN-subqueries would hide the patient indexes from the planner.
    return direct.order_by().union(grouped.order_by(), emergency.order_by())


def _may_see_patients(caller: Caller) -> bool:
    user = caller.user
    if caller.kind == SYSTEM:
        return True
    if user is None or not user.is_active:
        return False
    return caller.kind == PATIENT or (caller.kind == USER and user.role in CLINICAL_ROLES)


def billing_organization(caller: Caller) -> int | None:
    """The organisation of a billing staff member's token (administrative access), else None."""
    user = caller.user
    if caller.kind != USER or user is None or not user.is_active or user.role != Role.BILLING:
        return None
    return user.organization_id


def _organization_patients(organization_id: int) -> models.QuerySet[Any]:
    return Patient.objects.filter(organization_id=organization_id).values("pk")


def visible_patients(caller: Caller) -> models.QuerySet[Patient]:
    """The patients whose compartment the caller may enter."""
    organization_id = billing_organization(caller)
    if organization_id is not None:
        return Patient.objects.filter(organization_id=organization_id)
    if not _may_see_patients(caller):
        return Patient.objects.none()
    if caller.kind == SYSTEM:
        return Patient.objects.all()
    assert caller.user is not None  # noqa: S101 - _may_see_patients checked it
    if caller.kind == PATIENT:
        return Patient.objects.filter(user=caller.user)
    return Patient.objects.filter(pk__in=granted_patient_ids(caller.user))


def _patient_filter(caller: Caller, path: str) -> Q:
    """Rows of the patients the caller may see, `path` leading from the row to its patient."""
    assert caller.user is not None  # noqa: S101 - only called for patient and user callers
    column = f"{path}_id" if path else "pk"
    if caller.kind == PATIENT:
        # The compartment of the token's own patient, by its id (no join on Patient per row).
        own = Patient.objects.filter(user=caller.user).values("pk")
        return Q(**{f"{column}__in": own})
    return Q(**{f"{column}__in": granted_patient_ids(caller.user)})


def may_see_patient(caller: Caller, patient_id: int) -> bool:
    """Whether the caller may enter this one patient's compartment (simple indexed lookups);
    for billing staff, its administrative types only (`scoped` keeps the others closed)."""
    organization_id = billing_organization(caller)
    if organization_id is not None:
        return Patient.objects.filter(pk=patient_id, organization_id=organization_id).exists()
    if not _may_see_patients(caller):
        return False
    if caller.kind == SYSTEM:
        return True
    assert caller.user is not None  # noqa: S101 - _may_see_patients checked it
    if caller.kind == PATIENT:
        return Patient.objects.filter(pk=patient_id, user=caller.user).exists()
    # With the patient fixed, each grant is an index probe; no UNION of every grant to build.
    direct, grouped, emergency = _grants(caller.user)
    return (
        direct.filter(content_object_id=patient_id).exists()
        or grouped.filter(content_object_id=patient_id).exists()
        or emergency.filter(patient_id=patient_id).exists()
    )


def scoped(
    caller: Caller,
    rtype: ResourceType,
    model: type[models.Model],
    *,
    patient_id: int | None = None,
    checked: bool = False,
) -> models.QuerySet[Any]:
    """The rows of `model` (serving `rtype`) the caller may see, with what the mapper reads.

    `patient_id` pins the rows to one patient (a read, or a search by patient): the caller's
    right to that patient is then checked once, instead of joining every grant to every row
    (`checked`: the caller already did it with `may_see_patient`). The type may narrow the
    result further for the caller (`ResourceType.restrict`).
    """
    queryset = _compartment(caller, rtype, model, patient_id=patient_id, checked=checked)
    return rtype.restrict(caller, queryset)


def _compartment(
    caller: Caller,
    rtype: ResourceType,
    model: type[models.Model],
    *,
    patient_id: int | None,
    checked: bool,
) -> models.QuerySet[Any]:
    queryset = with_related(model, rtype.queryset(model))
    if rtype.patient_path is None:
        return queryset
    column = f"{rtype.patient_path}_id" if rtype.patient_path else "pk"
    organization_id = billing_organization(caller)
    if organization_id is not None:
        # Before the patient pin: `checked` may come from `may_see_patient`, which lets billing
        # staff into the compartment for these types only.
        if rtype.name not in ADMINISTRATIVE_TYPES:
            return queryset.none()
        queryset = queryset.filter(**{f"{column}__in": _organization_patients(organization_id)})
        return queryset if patient_id is None else queryset.filter(**{column: patient_id})
    if patient_id is not None:
        if not checked and not may_see_patient(caller, patient_id):
            return queryset.none()
        queryset = queryset.filter(**{column: patient_id})
    elif caller.kind == SYSTEM:
        return queryset
    elif not _may_see_patients(caller):
        return queryset.none()
    else:
        queryset = queryset.filter(_patient_filter(caller, rtype.patient_path))
    if caller.kind == PATIENT and model is MedicationRequest:
        # Drafts (written through the API, not yet signed) are not the patient's prescriptions.
        queryset = queryset.exclude(prescription__status=Prescription.Status.DRAFT)
    if caller.kind == USER and caller.user is not None and _has_field(model, "sensitivity"):
        allowed = sensitivities_for(caller.user)
        if len(allowed) < len(Sensitivity.values):
            queryset = queryset.filter(sensitivity__in=allowed)
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
