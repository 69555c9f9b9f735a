"""Review of proposed charges: confirm, change a quantity, add a code, cancel.

The patient's care-team clinicians review the charges of the acts they performed; billing staff
of the patient's organisation may do the same. Everyone else gets a 404 (audited). A change
that would break a tariff rule is refused with the reasons (`RuleViolation`); confirmation
needs the act's whole set of charges to follow the rules. Invoiced charges never change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.billing.access import charges_for_user, get_charge_for_user
from apps.billing.models import ChargeItem, Context, TariffCode
from apps.billing.money import to_cents
from apps.devices.models import Device
from apps.records.access import Level, PatientAccess, Via, check_patient_access, deny
from apps.records.models import Encounter, Patient

from . import BillingError
from .capture import context_of, device_performer, profile_for
from .tariffs import RuleViolation, basic_coverage, price, violations

Items = list[tuple[TariffCode, Decimal]]


def _pk(value: Any) -> Any:
    """An id, or the id of a model instance passed instead."""
    return getattr(value, "pk", value)


def charges_to_review(user: User) -> QuerySet[ChargeItem]:
    """The proposed charges `user` may review (care team, billing staff), oldest first."""
    return (
        charges_for_user(user)
        .filter(status=ChargeItem.Status.PROPOSED)
        .select_related("patient", "code__tariff", "encounter")
        .order_by("performed_at", "pk")
    )


def _reviewer_access(user: User, patient_id: Any) -> PatientAccess | None:
    access = check_patient_access(user, patient_id, need=Level.ADMINISTRATIVE)
    if access is not None and access.via in (Via.BILLING, Via.CARE_TEAM):
        return access
    return None


def get_encounter_for_review(
    user: User,
    encounter_id: Any,
    *,
    request: HttpRequest | None = None,
    action: str | None = Action.READ,
) -> tuple[Encounter, PatientAccess]:
    """An encounter whose charges `user` may review (care team or billing staff), or Http404."""
    encounter_id = _pk(encounter_id)
    encounter = (
        Encounter.objects.select_related("patient", "practitioner").filter(pk=encounter_id).first()
        if str(encounter_id).isdigit()
        else None
    )
    access = _reviewer_access(user, encounter.patient_id) if encounter is not None else None
    if encounter is None or access is None:
        raise deny(
            user,
            request=request,
            what="charges",
            object_type="records.encounter",
            object_id=encounter_id,
            patient_id=encounter.patient_id if encounter is not None else "",
        )
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=encounter,
            patient_id=str(encounter.patient_id),
            detail=access.audit_detail(what="charges"),
        )
    return encounter, access


def get_device_for_review(
    user: User,
    device_id: Any,
    *,
    request: HttpRequest | None = None,
    action: str | None = Action.READ,
) -> tuple[Device, PatientAccess]:
    """A monitoring device whose charges `user` may review, or Http404."""
    device_id = _pk(device_id)
    device = (
        Device.objects.select_related("patient", "registered_by").filter(pk=device_id).first()
        if str(device_id).isdigit()
        else None
    )
    access = None
    if device is not None and device.patient_id is not None:
        access = _reviewer_access(user, device.patient_id)
    if device is None or access is None:
        raise deny(
            user,
            request=request,
            what="charges",
            object_type="devices.device",
            object_id=device_id,
            patient_id=device.patient_id if device is not None and device.patient_id else "",
        )
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=device,
            patient_id=str(device.patient_id),
            detail=access.audit_detail(what="charges"),
        )
    return device, access


def act_charges(charge: ChargeItem) -> QuerySet[ChargeItem]:
    """The live (not cancelled) charges of the same act as `charge`."""
    if charge.encounter_id is not None:
        act = Q(encounter_id=charge.encounter_id)
    elif charge.device_id is not None:
        act = Q(device_id=charge.device_id)
    else:
        act = Q(pk=charge.pk)
    return (
        ChargeItem.objects.filter(act, patient_id=charge.patient_id)
        .exclude(status=ChargeItem.Status.CANCELLED)
        .select_related("code__tariff")
        .order_by("code__code", "pk")
    )


def _act_key(charge: ChargeItem) -> tuple[str, int]:
    if charge.encounter_id is not None:
        return ("encounter", charge.encounter_id)
    if charge.device_id is not None:
        return ("device", charge.device_id)
    return ("charge", charge.pk)


def _check_editable(charge: ChargeItem) -> None:
    if charge.status == ChargeItem.Status.INVOICED:
        raise BillingError(
            _("%(code)s is already invoiced: it cannot change any more (issue a credit note).")
            % {"code": charge.code.code}
        )
    if charge.status == ChargeItem.Status.CANCELLED:
        raise BillingError(_("%(code)s was cancelled.") % {"code": charge.code.code})


def _new_violations(before: Items, after: Items, *, context: str, on: dt.date) -> list[str]:
    """What a change breaks that was not already broken (the rest is caught at confirmation,
    so that a reviewer can mend a set one step at a time)."""
    existing = set(violations(before, context=context, on=on)) if before else set()
    return [v for v in violations(after, context=context, on=on) if v not in existing]


def _audit_change(
    user: User,
    charge: ChargeItem,
    access: PatientAccess,
    request: HttpRequest | None,
    action: str = Action.UPDATE,
    **detail: Any,
) -> None:
    audit(
        action,
        request=request,
        actor=user,
        obj=charge,
        patient_id=str(charge.patient_id),
        detail=access.audit_detail(what="charge", **detail),
    )


def _parse_quantity(quantity: Any) -> Decimal:
    try:
        value = Decimal(str(quantity))
    except InvalidOperation:
        raise BillingError(_("Enter the quantity as a number.")) from None
    if not value.is_finite() or value != value.quantize(Decimal("0.01")) or value >= 10**6:
        raise BillingError(_("Enter a quantity with at most two decimals."))
    return value


def do_confirm_charges(
    user: User, charge_ids: Iterable[Any], *, request: HttpRequest | None = None
) -> int:
    """Confirm proposed charges for invoicing. Refused (RuleViolation, nothing confirmed)
    while an act they belong to breaks a tariff rule. Returns how many were confirmed.

    Confirming says "this is what I did": the patient's care team does it, not billing staff
    (who may adjust or cancel an item, but not vouch for the act).
    """
    ids = list(dict.fromkeys(str(_pk(pk)) for pk in charge_ids))
    accesses = {pk: get_charge_for_user(user, pk, request=request, action=None)[1] for pk in ids}
    if any(access.via != Via.CARE_TEAM for access in accesses.values()):
        raise BillingError(_("Only the patient's care team can confirm the charges of an act."))
    with transaction.atomic():
        charges = list(
            ChargeItem.objects.select_for_update(of=("self",))
            .filter(pk__in=[int(pk) for pk in ids])
            .select_related("code__tariff")
            .order_by("pk")
        )
        acts: dict[tuple[str, int], ChargeItem] = {}
        for charge in charges:
            _check_editable(charge)
            acts.setdefault(_act_key(charge), charge)
        found: list[str] = []
        for charge in acts.values():
            items = [(item.code, item.quantity) for item in act_charges(charge)]
            on = timezone.localdate(charge.performed_at)
            found += violations(items, context=charge.context, on=on)
        if found:
            raise RuleViolation(
                list(dict.fromkeys(found)), intro=_("These charges cannot be confirmed:")
            )
        confirmed = 0
        now = timezone.now()
        for charge in charges:
            if charge.status != ChargeItem.Status.PROPOSED:
                continue
            charge.status = ChargeItem.Status.CONFIRMED
            charge.confirmed_by = user
            charge.confirmed_at = now
            charge.save(update_fields=["status", "confirmed_by", "confirmed_at"])
            _audit_change(user, charge, accesses[str(charge.pk)], request, change="confirm")
            confirmed += 1
    return confirmed


def do_change_quantity(
    user: User, charge_id: Any, quantity: Any, *, request: HttpRequest | None = None
) -> ChargeItem:
    """Change a charge's quantity, priced at its unit price snapshot. Refused when the act
    would break a rule it did not break before."""
    new = _parse_quantity(quantity)
    found, access = get_charge_for_user(user, _pk(charge_id), request=request, action=None)
    with transaction.atomic():
        charge = (
            ChargeItem.objects.select_for_update(of=("self",))
            .select_related("code__tariff")
            .get(pk=found.pk)
        )
        _check_editable(charge)
        siblings = list(act_charges(charge))
        before = [(item.code, item.quantity) for item in siblings]
        after = [(item.code, new if item.pk == charge.pk else item.quantity) for item in siblings]
        broken = _new_violations(
            before, after, context=charge.context, on=timezone.localdate(charge.performed_at)
        )
        if broken:
            raise RuleViolation(broken, intro=_("The quantity cannot be changed:"))
        old = charge.quantity
        charge.quantity = new
        charge.amount = to_cents(charge.unit_price * new)
        charge.save(update_fields=["quantity", "amount"])
        _audit_change(
            user, charge, access, request, change="quantity", before=str(old), after=str(new)
        )
    return charge


@dataclass(frozen=True)
class _Act:
    patient: Patient
    context: str
    performed_at: dt.datetime
    performer: User | None
    source: dict[str, Any]


def _locked_act(encounter_id: Any, device_id: Any) -> _Act:
    """The act to add a charge to, locked so two additions are checked one after the other."""
    if encounter_id is not None:
        encounter = (
            Encounter.objects.select_for_update(of=("self",))
            .select_related("patient", "practitioner")
            .get(pk=encounter_id)
        )
        context = context_of(encounter)
        if context is None or encounter.status != Encounter.Status.FINISHED:
            raise BillingError(_("Codes are added to finished consultations only."))
        return _Act(
            encounter.patient,
            context,
            encounter.started_at,
            encounter.practitioner,
            {"encounter": encounter},
        )
    device = (
        Device.objects.select_for_update(of=("self",))
        .select_related("patient", "registered_by")
        .get(pk=device_id)
    )
    if device.status != Device.Status.RETIRED or device.patient is None:
        raise BillingError(_("Codes are added to closed monitoring periods only."))
    return _Act(
        device.patient,
        Context.MONITORING,
        device.registered_at,
        device_performer(device),
        {"device": device},
    )


def do_add_charge(
    user: User,
    *,
    encounter_id: Any = None,
    device_id: Any = None,
    code_id: Any,
    quantity: Any,
    request: HttpRequest | None = None,
) -> ChargeItem:
    """Add a code to an act's charges (e.g. a written report), priced like a proposal and
    checked against the act's other charges. The act is an encounter or a monitoring device."""
    if (encounter_id is None) == (device_id is None):
        raise BillingError(_("Choose the consultation or the monitoring period."))
    new = _parse_quantity(quantity)
    if encounter_id is not None:
        found, access = get_encounter_for_review(user, encounter_id, request=request, action=None)
        encounter_id = found.pk
    else:
        device, access = get_device_for_review(user, device_id, request=request, action=None)
        device_id = device.pk
    code_id = _pk(code_id)
    code = (
        TariffCode.objects.select_related("tariff").filter(pk=code_id).first()
        if str(code_id).isdigit()
        else None
    )
    if code is None:
        raise BillingError(_("Choose a code from the tariff catalogue."))
    with transaction.atomic():
        act = _locked_act(encounter_id, device_id)
        on = timezone.localdate(act.performed_at)
        siblings = (
            ChargeItem.objects.filter(**act.source)
            .exclude(status=ChargeItem.Status.CANCELLED)
            .select_related("code__tariff")
        )
        before = [(item.code, item.quantity) for item in siblings]
        broken = _new_violations(before, [*before, (code, new)], context=act.context, on=on)
        if broken:
            raise RuleViolation(broken, intro=_("The code cannot be added:"))
        coverage = basic_coverage(act.patient, on)
        priced = price(
            code,
            new,
            canton=profile_for(act.patient).canton,
            insurer=coverage.insurer if coverage is not None else None,
            on=on,
        )
        charge = ChargeItem.objects.create(
            patient=act.patient,
            code=code,
            context=act.context,
            performed_at=act.performed_at,
            performer=act.performer,
            quantity=new,
            unit_points=priced.unit_points,
            point_value=priced.point_value,
            unit_price=priced.unit_price,
            amount=priced.amount,
            vat_rate=code.vat_rate,
            status=ChargeItem.Status.PROPOSED,
            explanation=_("Added at review by %(name)s.") % {"name": user.get_full_name()},
            **act.source,
        )
        _audit_change(
            user,
            charge,
            access,
            request,
            action=Action.CREATE,
            change="add",
            code=code.code,
            quantity=str(new),
        )
    return charge


def do_cancel_charge(
    user: User, charge_id: Any, *, request: HttpRequest | None = None
) -> ChargeItem:
    """Cancel a charge that is not invoiced (cancelling twice changes nothing)."""
    found, access = get_charge_for_user(user, _pk(charge_id), request=request, action=None)
    with transaction.atomic():
        charge = (
            ChargeItem.objects.select_for_update(of=("self",))
            .select_related("code__tariff")
            .get(pk=found.pk)
        )
        if charge.status == ChargeItem.Status.CANCELLED:
            return charge
        _check_editable(charge)
        previous = charge.status
        charge.status = ChargeItem.Status.CANCELLED
        charge.save(update_fields=["status"])
        _audit_change(user, charge, access, request, change="cancel", before=previous)
    return charge
