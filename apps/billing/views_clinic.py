"""The review of the charges proposed for acts: the list of acts with charges still to review,
and one act's page (change a quantity, add a code, cancel an item, confirm).

The clinicians on the patient's care team review what they did; billing staff of the patient's
organisation may too (they follow up the exceptions). The review services' access helpers
decide; everyone else gets an audited 404.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Min, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from apps.accounts.models import User
from apps.devices.models import Device
from apps.records.access import PatientAccess, Via, deny
from apps.records.models import Encounter, Patient

from .access import charges_for_user, is_billing_staff
from .forms import AddChargeForm, ChargeForm, QuantityForm
from .models import ChargeItem, Context
from .services import BillingError
from .services.capture import context_of
from .services.review import (
    do_add_charge,
    do_cancel_charge,
    do_change_quantity,
    do_confirm_charges,
    get_device_for_review,
    get_encounter_for_review,
)
from .services.tariffs import RuleViolation
from .views import PAGE_SIZE, audit_listing


def _reviewer(request: HttpRequest, what: str) -> User:
    user: User = request.user  # type: ignore[assignment]
    if not (user.is_clinician or is_billing_staff(user)):
        raise deny(user, request=request, what=what)
    return user


@require_GET
@login_required
def charges_review(request: HttpRequest) -> HttpResponse:
    """Acts with proposed charges: of the care-team patients (clinicians), of the
    organisation's patients (billing staff)."""
    user = _reviewer(request, "charges-review")
    proposed = charges_for_user(user).filter(status=ChargeItem.Status.PROPOSED)
    acts = (
        proposed.values("patient_id", "encounter_id", "device_id")
        .annotate(items=Count("pk"), amount=Sum("amount"), performed=Min("performed_at"))
        .order_by("performed", "encounter_id", "device_id")
    )
    page = Paginator(acts, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    patients = Patient.objects.in_bulk({row["patient_id"] for row in rows})
    encounters = Encounter.objects.in_bulk({row["encounter_id"] for row in rows} - {None})
    devices = Device.objects.in_bulk({row["device_id"] for row in rows} - {None})
    items: dict[tuple[Any, Any], list[ChargeItem]] = defaultdict(list)
    acted = proposed.filter(
        Q(encounter_id__in=list(encounters)) | Q(device_id__in=list(devices))
    ).select_related("code")
    for charge in acted:
        items[(charge.encounter_id, charge.device_id)].append(charge)
    for row in rows:
        row["patient"] = patients[row["patient_id"]]
        row["encounter"] = encounters.get(row["encounter_id"])
        row["device"] = devices.get(row["device_id"])
        row["charges"] = sorted(
            items[(row["encounter_id"], row["device_id"])], key=lambda c: (c.code.code, c.pk)
        )
    audit_listing(
        user,
        patients,
        request=request,
        what="charges-review",
        object_type="billing.chargeitem",
        count=sum(row["items"] for row in rows),
    )
    return render(request, "billing/charges_review.html", {"page": page, "acts": rows})


class _Act:
    """One act under review: an encounter or a monitoring period (a retired device)."""

    def __init__(
        self,
        access: PatientAccess,
        *,
        encounter: Encounter | None = None,
        device: Device | None = None,
    ) -> None:
        self.access = access
        self.encounter = encounter
        self.device = device

    @property
    def source(self) -> dict[str, Any]:
        if self.encounter is not None:
            return {"encounter_id": self.encounter.pk}
        return {"device_id": self.device.pk}  # type: ignore[union-attr]

    @property
    def context(self) -> str | None:
        if self.encounter is not None:
            return context_of(self.encounter)
        return Context.MONITORING

    @property
    def day(self) -> Any:
        moment = (
            self.encounter.started_at if self.encounter is not None else self.device.registered_at  # type: ignore[union-attr]
        )
        return timezone.localdate(moment)

    def charges(self) -> list[ChargeItem]:
        return list(
            ChargeItem.objects.filter(**self.source)
            .select_related("code__tariff", "confirmed_by")
            .order_by("status", "code__code", "pk")
        )

    def add_form(self, data: Any = None) -> AddChargeForm | None:
        if self.context is None:
            return None
        return AddChargeForm(data, context=self.context, on=self.day)


def act_context(
    act: _Act,
    *,
    add_form: AddChargeForm | None = None,
    errors: list[str] | None = None,
    quantity_forms: dict[int, QuantityForm] | None = None,
) -> dict[str, Any]:
    charges = act.charges()
    pending = [charge for charge in charges if charge.status == ChargeItem.Status.PROPOSED]
    quantity_forms = quantity_forms or {}
    for charge in charges:
        charge.quantity_form = quantity_forms.get(  # type: ignore[attr-defined]
            charge.pk,
            QuantityForm(
                initial={"charge": charge.pk, "quantity": charge.quantity.normalize()},
                prefix=f"q{charge.pk}",
            ),
        )
    return {
        "patient": act.access.patient,
        "charges": charges,
        "pending": pending,
        "pending_amount": sum((c.amount for c in pending), Decimal("0.00")),
        "encounter": act.encounter,
        "device": act.device,
        "context_label": Context(act.context).label if act.context else "",
        "add_form": add_form or act.add_form(),
        "errors": errors or [],
        "may_confirm": act.access.via == Via.CARE_TEAM,
    }


def _review(request: HttpRequest, act: _Act, user: User) -> HttpResponse:
    """Apply one review operation (the form's `op`) and go back to the act, or show why not."""
    operation = request.POST.get("op", "")
    add_form = None
    quantity_forms: dict[int, QuantityForm] = {}
    errors: list[str] = []
    own = {charge.pk for charge in act.charges()}
    try:
        if operation == "confirm":
            pending = ChargeItem.objects.filter(**act.source, status=ChargeItem.Status.PROPOSED)
            count = do_confirm_charges(
                user, list(pending.values_list("pk", flat=True)), request=request
            )
            messages.success(
                request,
                _("%(count)s charges confirmed: billing staff can invoice them.")
                % {"count": count},
            )
            return redirect("billing:charges_review")
        if operation == "quantity":
            pk = str(request.POST.get("charge", ""))
            form = QuantityForm(request.POST, prefix=f"q{pk}")
            if pk.isdigit():
                # Shown again with what was typed if the change is refused.
                quantity_forms[int(pk)] = form
            if form.is_valid() and form.cleaned_data["charge"] in own:
                do_change_quantity(
                    user,
                    form.cleaned_data["charge"],
                    form.cleaned_data["quantity"],
                    request=request,
                )
                messages.success(request, _("Quantity changed."))
                return redirect(request.path)
            errors.append(_("Give a quantity of at least 0.01 for an item of this act."))
        elif operation == "add":
            add_form = act.add_form(request.POST)
            if add_form is None:
                errors.append(_("Codes are added to finished consultations only."))
            elif add_form.is_valid():
                do_add_charge(
                    user,
                    **act.source,
                    code_id=add_form.cleaned_data["code"].pk,
                    quantity=add_form.cleaned_data["quantity"],
                    request=request,
                )
                messages.success(request, _("Code added: review it with the others."))
                return redirect(request.path)
        elif operation == "cancel":
            chosen = ChargeForm(request.POST)
            if chosen.is_valid() and chosen.cleaned_data["charge"] in own:
                do_cancel_charge(user, chosen.cleaned_data["charge"], request=request)
                messages.success(request, _("Item cancelled."))
                return redirect(request.path)
            errors.append(_("Choose an item of this act."))
        else:
            errors.append(_("Choose what to do."))
    except RuleViolation as error:
        # Each broken rule on its own line, with its explanation.
        errors.extend(error.violations)
        if add_form is not None:
            for violation in error.violations:
                add_form.add_error(None, violation)
    except BillingError as error:
        errors.append(str(error))
        if add_form is not None:
            add_form.add_error(None, str(error))
    context = act_context(act, add_form=add_form, errors=errors, quantity_forms=quantity_forms)
    return render(request, "billing/act_charges.html", context, status=400)


@require_http_methods(["GET", "POST"])
@login_required
def encounter_charges(request: HttpRequest, pk: int) -> HttpResponse:
    user = _reviewer(request, "encounter-charges")
    # A change is audited by its service; only reading the page records a "read".
    action = None if request.method == "POST" else "read"
    encounter, access = get_encounter_for_review(user, pk, request=request, action=action)
    act = _Act(access, encounter=encounter)
    if request.method == "POST":
        return _review(request, act, user)
    return render(request, "billing/act_charges.html", act_context(act))


@require_http_methods(["GET", "POST"])
@login_required
def device_charges(request: HttpRequest, pk: int) -> HttpResponse:
    user = _reviewer(request, "device-charges")
    action = None if request.method == "POST" else "read"
    device, access = get_device_for_review(user, pk, request=request, action=action)
    act = _Act(access, device=device)
    if request.method == "POST":
        return _review(request, act, user)
    return render(request, "billing/act_charges.html", act_context(act))
