"""The one gate to patient data: `get_patient_for_user` and its helpers.

Pages, API views, downloads and FHIR endpoints all call it. It answers 404 (Http404) to anyone
who may not see the patient, and writes one audit row for every granted read and every denial.

Who may see what:
- a patient: their own record, everything in it;
- a clinician on a current care team of the patient (guardian object permission
  `records.access_record`, granted and revoked only by `services.care_team`): the clinical
  record, minus sensitive categories their role is not allowed (`RECORDS_SENSITIVE_ROLES`);
- a clinician with an unexpired break-the-glass access: the same, flagged in the audit trail;
- billing staff of the patient's managing organisation: identity and administrative data only;
- nobody else, administrators included.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.http import Http404, HttpRequest
from django.utils import timezone
from guardian.shortcuts import get_objects_for_user

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.audit.models import Action, Outcome
from apps.audit.services import record as audit

from .models import BreakGlassAccess, Patient, Sensitivity

ACCESS_PERMISSION = "records.access_record"

M = TypeVar("M", bound=models.Model)


class Level(IntEnum):
    ADMINISTRATIVE = 1
    CLINICAL = 2


class Via:
    SELF = "self"
    CARE_TEAM = "care-team"
    BREAK_GLASS = "break-glass"
    BILLING = "billing"


@dataclass(frozen=True)
class PatientAccess:
    """What `user` may see of `patient`, and why."""

    patient: Patient
    user: User
    level: Level
    via: str
    sensitivities: frozenset[str]
    break_glass: BreakGlassAccess | None = None

    @property
    def clinical(self) -> bool:
        return self.level >= Level.CLINICAL

    @property
    def is_patient_self(self) -> bool:
        return self.via == Via.SELF

    def visible(self, queryset: models.QuerySet[M]) -> models.QuerySet[M]:
        """Restrict a queryset of clinical items of this patient to what this user may see."""
        if not self.clinical:
            return queryset.none()
        queryset = queryset.filter(patient=self.patient)
        if len(self.sensitivities) < len(Sensitivity.values):
            queryset = queryset.filter(sensitivity__in=self.sensitivities)
        return queryset

    def audit_detail(self, **extra: Any) -> dict[str, Any]:
        detail: dict[str, Any] = {"via": self.via, **extra}
        if self.break_glass is not None:
            detail["break_glass"] = self.break_glass.pk
        return detail


def sensitivities_for(user: User) -> frozenset[str]:
    allowed = {Sensitivity.NORMAL.value}
    for category, roles in settings.RECORDS_SENSITIVE_ROLES.items():
        if user.role in roles:
            allowed.add(category)
    return frozenset(allowed)


def patients_for_user(user: User) -> models.QuerySet[Patient]:
    """The patients whose record `user` may open through a care team (never global perms)."""
    if not user.is_authenticated or user.role not in CLINICAL_ROLES:
        return Patient.objects.none()
    return get_objects_for_user(
        user,
        ACCESS_PERMISSION,
        klass=Patient.objects.all(),
        accept_global_perms=False,
        with_superuser=False,
    )


def active_break_glass(user: User, patient_id: int) -> BreakGlassAccess | None:
    return (
        BreakGlassAccess.objects.filter(
            user=user, patient_id=patient_id, ended_at__isnull=True, expires_at__gt=timezone.now()
        )
        .order_by("-expires_at")
        .first()
    )


def _resolve(user: User, patient: Patient) -> PatientAccess | None:
    if not user.is_authenticated or not user.is_active:
        return None
    if user.role == Role.PATIENT:
        if patient.user_id == user.pk:
            return PatientAccess(
                patient, user, Level.CLINICAL, Via.SELF, frozenset(Sensitivity.values)
            )
        return None
    if user.role in CLINICAL_ROLES:
        if patients_for_user(user).filter(pk=patient.pk).exists():
            return PatientAccess(
                patient, user, Level.CLINICAL, Via.CARE_TEAM, sensitivities_for(user)
            )
        grant = active_break_glass(user, patient.pk)
        if grant is not None:
            return PatientAccess(
                patient, user, Level.CLINICAL, Via.BREAK_GLASS, sensitivities_for(user), grant
            )
        return None
    if user.role == Role.BILLING and user.organization_id is not None:
        if patient.organization_id == user.organization_id:
            return PatientAccess(patient, user, Level.ADMINISTRATIVE, Via.BILLING, frozenset())
    return None


def deny(
    user: User,
    *,
    request: HttpRequest | None,
    what: str,
    object_type: str = "records.patient",
    object_id: Any = "",
    patient_id: Any = "",
) -> Http404:
    """Audit a refusal and return the 404 to raise."""
    audit(
        Action.DENIED,
        request=request,
        actor=user,
        object_type=object_type,
        object_id=str(object_id),
        patient_id=str(patient_id or ""),
        outcome=Outcome.DENIED,
        detail={"what": what},
    )
    return Http404()


def check_patient_access(
    user: User, patient_id: Any, *, need: Level = Level.CLINICAL
) -> PatientAccess | None:
    """The access `user` has to the patient, without auditing (for building links)."""
    try:
        patient = Patient.objects.get(pk=int(patient_id))
    except (Patient.DoesNotExist, TypeError, ValueError):
        return None
    access = _resolve(user, patient)
    if access is None or access.level < need:
        return None
    return access


def get_patient_for_user(
    user: User,
    patient_id: Any,
    *,
    request: HttpRequest | None = None,
    need: Level = Level.CLINICAL,
    what: str = "record",
    action: str | None = Action.READ,
) -> PatientAccess:
    """The patient's access for `user`, or Http404 (audited either way).

    `action=None` skips the "read" row: the caller is a write service that audits the change.
    """
    access = check_patient_access(user, patient_id, need=need)
    if access is None:
        exists = Patient.objects.filter(pk=patient_id).exists() if str(patient_id).isdigit() else 0
        raise deny(
            user,
            request=request,
            what=what,
            object_id=patient_id,
            patient_id=patient_id if exists else "",
        )
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=access.patient,
            patient_id=str(access.patient.pk),
            detail=access.audit_detail(what=what),
        )
    return access


def get_item_for_user(
    user: User,
    model: type[M],
    pk: Any,
    *,
    request: HttpRequest | None = None,
    what: str = "",
    action: str | None = Action.READ,
    queryset: models.QuerySet[M] | None = None,
) -> tuple[M, PatientAccess]:
    """One clinical item (observation, document, note…) through its patient's access, or 404."""
    label = model._meta.label_lower
    what = what or label
    base = queryset if queryset is not None else model._default_manager.all()
    item = base.filter(pk=pk).first() if str(pk).isdigit() else None
    if item is None:
        raise deny(user, request=request, what=what, object_type=label, object_id=pk)
    patient_id = item.patient_id  # type: ignore[attr-defined]
    access = check_patient_access(user, patient_id)
    sensitivity = getattr(item, "sensitivity", Sensitivity.NORMAL)
    if access is None or sensitivity not in access.sensitivities:
        raise deny(
            user,
            request=request,
            what=what,
            object_type=label,
            object_id=pk,
            patient_id=patient_id,
        )
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=item,
            patient_id=str(patient_id),
            detail=access.audit_detail(what=what),
        )
    return item, access
