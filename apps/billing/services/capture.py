"""Charge capture: the charges an act is worth are proposed automatically when it ends.

An act is a finished encounter (video or in person, priced from its real duration) or a closed
remote-monitoring period (a retired device that had a patient). A `Capture` row marks each act
handled, created first in the act's transaction so that two workers never propose twice.
What is proposed is then reviewed (`services.review`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.billing.models import BillingProfile, Capture, ChargeItem, Context, TariffCode
from apps.devices.models import Device
from apps.records.models import Encounter, Patient

from . import BillingError
from .tariffs import (
    basic_coverage,
    incompatible_pairs,
    price,
    quantity_for,
    started_units,
    valid_between,
)

logger = logging.getLogger(__name__)

# Acts older than this are left alone: capture is for what just ended, not for history.
CAPTURE_WINDOW = dt.timedelta(days=30)
CAPTURE_BATCH = 200

_CONTEXTS: dict[str, str] = {
    Encounter.Kind.VIRTUAL: Context.VIDEO,
    Encounter.Kind.AMBULATORY: Context.IN_PERSON,
    Encounter.Kind.HOME: Context.IN_PERSON,
}
_CONTEXT_FLAG: dict[str, str] = {
    Context.VIDEO: "for_video",
    Context.IN_PERSON: "for_in_person",
    Context.MONITORING: "for_monitoring",
}


def context_of(encounter: Encounter) -> str | None:
    """The tariff context of an encounter (None: nothing billed automatically)."""
    return _CONTEXTS.get(encounter.kind)


def _minutes(start: dt.datetime, end: dt.datetime) -> Decimal:
    """Whole seconds as minutes: clock jitter below a second never starts a new unit."""
    seconds = max(0, int((end - start).total_seconds()))
    return Decimal(seconds) / 60


def _unit_text(unit_minutes: int) -> str:
    if unit_minutes % (24 * 60) == 0:
        days = unit_minutes // (24 * 60)
        return ngettext("%(n)s day", "%(n)s days", days) % {"n": days}
    return _("%(n)s min") % {"n": unit_minutes}


def _rule_text(code: TariffCode, minutes: Decimal, quantity: Decimal) -> str:
    """How the quantity was found, for the reviewer."""
    if not code.unit_minutes:
        return ""
    started = started_units(code, minutes)
    parts = []
    if code.min_minutes:
        parts.append(
            _("%(count)s started periods of %(unit)s beyond the first %(min)s min.")
            % {"count": started, "unit": _unit_text(code.unit_minutes), "min": code.min_minutes}
        )
    else:
        parts.append(
            _("%(count)s started periods of %(unit)s.")
            % {"count": started, "unit": _unit_text(code.unit_minutes)}
        )
    if started > quantity:
        parts.append(_("Limited to the maximum of %(max)s per act.") % {"max": code.max_quantity})
    return " ".join(parts)


def profile_for(patient: Patient) -> BillingProfile:
    """The billing profile of the patient's organisation (BillingError when it has none)."""
    profile = (
        BillingProfile.objects.filter(organization_id=patient.organization_id).first()
        if patient.organization_id is not None
        else None
    )
    if profile is None:
        raise BillingError(_("The patient's organisation has no billing profile."))
    return profile


def _propose(
    *,
    patient: Patient,
    context: str,
    performed_at: dt.datetime,
    minutes: Decimal,
    performer: User | None,
    source: dict[str, Any],
    summary: str,
) -> list[ChargeItem]:
    """Price and create the automatic charges of one act (inside the act's transaction)."""
    on = timezone.localdate(performed_at)
    profile = profile_for(patient)
    coverage = basic_coverage(patient, on)
    insurer = coverage.insurer if coverage is not None else None
    candidates = (
        TariffCode.objects.filter(
            valid_between(on), automatic=True, **{_CONTEXT_FLAG[context]: True}
        )
        .select_related("tariff")
        .order_by("code", "pk")
    )
    quantities = [(code, quantity_for(code, minutes)) for code in candidates]
    quantities = [(code, quantity) for code, quantity in quantities if quantity > 0]
    pairs = incompatible_pairs([code for code, _quantity in quantities])
    kept: list[tuple[TariffCode, Decimal, list[str]]] = []
    for code, quantity in quantities:
        clash = next((k for k in kept if (k[0].pk, code.pk) in pairs), None)
        if clash is not None:
            clash[2].append(
                _("%(dropped)s was not proposed: it cannot be billed with %(kept)s.")
                % {"dropped": code.code, "kept": clash[0].code}
            )
            continue
        kept.append((code, quantity, [summary, _rule_text(code, minutes, quantity)]))
    charges = []
    for code, quantity, notes in kept:
        priced = price(code, quantity, canton=profile.canton, insurer=insurer, on=on)
        charge = ChargeItem.objects.create(
            patient=patient,
            code=code,
            context=context,
            performed_at=performed_at,
            performer=performer,
            quantity=quantity,
            unit_points=priced.unit_points,
            point_value=priced.point_value,
            unit_price=priced.unit_price,
            amount=priced.amount,
            vat_rate=code.vat_rate,
            status=ChargeItem.Status.PROPOSED,
            explanation=" ".join(note for note in notes if note),
            **source,
        )
        audit(
            Action.CREATE,
            obj=charge,
            patient_id=str(patient.pk),
            detail={
                "what": "charge proposed",
                "code": code.code,
                "quantity": str(quantity),
                **{key: value.pk for key, value in source.items()},
            },
        )
        charges.append(charge)
    return charges


def _tell_reviewer(user: User | None, link_name: str, args: Iterable[Any] = ()) -> None:
    """One in-app notice that charges await review; no amounts, no clinical content."""
    if user is None or not user.is_active or user.role not in CLINICAL_ROLES:
        return
    from apps.notifications.services import notify

    def send() -> None:
        with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
            notify(
                user,
                kind="care.task",
                title=_("Charges to review"),
                body=_("Check and confirm the charges proposed for an act you performed."),
                link=reverse(link_name, args=list(args)),
            )

    transaction.on_commit(send)


def _capture_encounter(encounter: Encounter) -> list[ChargeItem] | None:
    """The charges proposed now, or None when the act was already captured (or not billable)."""
    context = context_of(encounter)
    if (
        context is None
        or encounter.status != Encounter.Status.FINISHED
        or encounter.started_at is None
        or encounter.ended_at is None
    ):
        return None
    minutes = _minutes(encounter.started_at, encounter.ended_at)
    with transaction.atomic():
        try:
            with transaction.atomic():
                Capture.objects.create(encounter=encounter)
        except IntegrityError:
            return None
        charges = _propose(
            patient=encounter.patient,
            context=context,
            performed_at=encounter.started_at,
            minutes=minutes,
            performer=encounter.practitioner,
            source={"encounter": encounter},
            summary=_("Duration: %(minutes)s min.") % {"minutes": _format_minutes(minutes)},
        )
        if charges:
            _tell_reviewer(encounter.practitioner, "billing:encounter_charges", [encounter.pk])
    return charges


def _format_minutes(minutes: Decimal) -> str:
    return formats.number_format(minutes.quantize(Decimal("0.1")).normalize())


def propose_for_encounter(encounter: Encounter) -> list[ChargeItem]:
    """Propose the charges of a finished encounter (once: [] if it was already captured)."""
    return _capture_encounter(encounter) or []


def _capture_device(device: Device) -> list[ChargeItem] | None:
    patient = device.patient
    if device.status != Device.Status.RETIRED or patient is None or device.retired_at is None:
        return None
    minutes = _minutes(device.registered_at, device.retired_at)
    performer = device_performer(device)
    with transaction.atomic():
        try:
            with transaction.atomic():
                Capture.objects.create(device=device)
        except IntegrityError:
            return None
        days = (minutes / (24 * 60)).quantize(Decimal("0.1"))
        charges = _propose(
            patient=patient,
            context=Context.MONITORING,
            performed_at=device.registered_at,
            minutes=minutes,
            performer=performer,
            source={"device": device},
            summary=_("Monitoring from %(start)s to %(end)s (%(days)s days).")
            % {
                "start": formats.date_format(timezone.localdate(device.registered_at)),
                "end": formats.date_format(timezone.localdate(device.retired_at)),
                "days": formats.number_format(days.normalize()),
            },
        )
        if charges:
            _tell_reviewer(performer, "billing:device_charges", [device.pk])
    return charges


def device_performer(device: Device) -> User | None:
    """Who performed a monitoring period: the clinician who set the device up, if one did."""
    by = device.registered_by
    return by if by is not None and by.role in CLINICAL_ROLES else None


def propose_for_device(device: Device) -> list[ChargeItem]:
    """Propose the charges of a closed monitoring period (once: [] if already captured)."""
    return _capture_device(device) or []


def capture_pending(now: dt.datetime | None = None, limit: int = CAPTURE_BATCH) -> int:
    """Capture the acts that ended in the last 30 days and were not yet captured; each in its
    own transaction. Returns how many acts were captured (the beat task's result)."""
    now = now or timezone.now()
    since = now - CAPTURE_WINDOW
    with_profile = Q(patient__organization__billing_profile__isnull=False)
    encounters = (
        Encounter.objects.filter(
            status=Encounter.Status.FINISHED,
            kind__in=list(_CONTEXTS),
            ended_at__gte=since,
            ended_at__lte=now,
        )
        .filter(~Exists(Capture.objects.filter(encounter=OuterRef("pk"))))
        .select_related("patient", "practitioner")
        .order_by("ended_at", "pk")
    )
    devices = (
        Device.objects.filter(
            status=Device.Status.RETIRED,
            patient__isnull=False,
            retired_at__gte=since,
            retired_at__lte=now,
        )
        .filter(~Exists(Capture.objects.filter(device=OuterRef("pk"))))
        .select_related("patient", "registered_by")
        .order_by("retired_at", "pk")
    )
    skipped = encounters.exclude(with_profile).count() + devices.exclude(with_profile).count()
    if skipped:
        logger.warning(
            "billing capture: %d acts skipped, their organisation has no profile", skipped
        )
    captured = 0
    for encounter in encounters.filter(with_profile)[:limit]:
        captured += _safely(_capture_encounter, encounter)
    for device in devices.filter(with_profile)[: max(0, limit - captured)]:
        captured += _safely(_capture_device, device)
    return captured


def _safely(capture: Any, act: Encounter | Device) -> int:
    """1 if the act was captured; a failure (a missing point value…) is logged and retried
    at the next run, since its transaction rolled back the Capture as well."""
    try:
        return int(capture(act) is not None)
    except BillingError as error:
        logger.error("billing capture of %s %s failed: %s", act._meta.label, act.pk, error)
        return 0
