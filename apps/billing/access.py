"""Who may see billing data; every read and every refusal is audited.

Billing data is administrative: identity, insurance, codes and amounts, never notes or results
(the records app's `Level.ADMINISTRATIVE`). So:

- billing staff see the invoices, charges, coverages and claims of the patients of their own
  organisation (the records rule for billing staff);
- a patient sees their own invoices, coverages, payments and credit notes;
- a clinician on the patient's care team reviews the patient's charge items (they confirm or
  adjust what they did), but does not see invoices;
- nobody else (404).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import Level, PatientAccess, Via, check_patient_access, deny

from .models import ChargeItem, Coverage, Invoice


def is_billing_staff(user: User) -> bool:
    return (
        user.is_authenticated
        and user.is_active
        and user.role == Role.BILLING
        and user.organization_id is not None
    )


def invoices_for_user(user: User) -> QuerySet[Invoice]:
    """The invoices `user` may see (the billing workspace's and the portal's lists)."""
    if not user.is_authenticated or not user.is_active:
        return Invoice.objects.none()
    if user.role == Role.PATIENT:
        return Invoice.objects.filter(patient__user=user)
    if is_billing_staff(user) and user.organization_id is not None:
        return Invoice.objects.filter(patient__organization_id=user.organization_id)
    return Invoice.objects.none()


def charges_for_user(user: User) -> QuerySet[ChargeItem]:
    """Charge items `user` may see: billing staff of the organisation, the care team."""
    if not user.is_authenticated or not user.is_active:
        return ChargeItem.objects.none()
    if is_billing_staff(user) and user.organization_id is not None:
        return ChargeItem.objects.filter(patient__organization_id=user.organization_id)
    if user.role in CLINICAL_ROLES:
        from apps.records.access import patients_for_user

        return ChargeItem.objects.filter(patient__in=patients_for_user(user).values("pk"))
    return ChargeItem.objects.none()


def billing_access(user: User, patient_id: Any) -> PatientAccess | None:
    """Administrative access to the patient for billing: billing staff or the patient."""
    access = check_patient_access(user, patient_id, need=Level.ADMINISTRATIVE)
    if access is None:
        return None
    if access.via in (Via.BILLING, Via.SELF):
        return access
    return None


def get_billing_patient_for_user(
    user: User,
    patient_id: Any,
    *,
    request: HttpRequest | None = None,
    what: str = "billing",
    action: str | None = Action.READ,
) -> PatientAccess:
    """The patient's billing access for `user` (billing staff or the patient), or Http404."""
    access = billing_access(user, patient_id)
    if access is None:
        raise deny(user, request=request, what=what, object_id=patient_id)
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


def get_invoice_for_user(
    user: User,
    invoice_id: Any,
    *,
    request: HttpRequest | None = None,
    what: str = "invoice",
    action: str | None = Action.READ,
) -> tuple[Invoice, PatientAccess]:
    """One invoice for billing staff of its organisation or its patient, or Http404."""
    invoice = None
    if str(invoice_id).isdigit():
        invoice = (
            Invoice.objects.select_related("patient", "insurer", "coverage", "organization")
            .filter(pk=invoice_id)
            .first()
        )
    access = billing_access(user, invoice.patient_id) if invoice is not None else None
    if invoice is None or access is None:
        raise deny(
            user,
            request=request,
            what=what,
            object_type="billing.invoice",
            object_id=invoice_id,
            patient_id=invoice.patient_id if invoice is not None else "",
        )
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=invoice,
            patient_id=str(invoice.patient_id),
            detail=access.audit_detail(what=what),
        )
    return invoice, access


def get_charge_for_user(
    user: User,
    charge_id: Any,
    *,
    request: HttpRequest | None = None,
    what: str = "charge",
    action: str | None = Action.READ,
) -> tuple[ChargeItem, PatientAccess]:
    """One charge item for billing staff of its organisation or the patient's care team."""
    charge = None
    if str(charge_id).isdigit():
        charge = ChargeItem.objects.select_related("code__tariff").filter(pk=charge_id).first()
    access = None
    if charge is not None:
        access = check_patient_access(user, charge.patient_id, need=Level.ADMINISTRATIVE)
        if access is not None and access.via not in (Via.BILLING, Via.CARE_TEAM):
            access = None
    if charge is None or access is None:
        raise deny(
            user,
            request=request,
            what=what,
            object_type="billing.chargeitem",
            object_id=charge_id,
            patient_id=charge.patient_id if charge is not None else "",
        )
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=charge,
            patient_id=str(charge.patient_id),
            detail=access.audit_detail(what=what),
        )
    return charge, access


def coverages_for_patient(access: PatientAccess) -> QuerySet[Coverage]:
    return Coverage.objects.filter(patient=access.patient).select_related("insurer")
