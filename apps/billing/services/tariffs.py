"""Tariff rules: how many units an act is worth, what they cost, and which sets are allowed.

Pure computations over the catalogue (`TariffCode`, `PointValue`, `Insurer`): capture uses
them to propose charges, review to check changes, invoices to price and split lines.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from django.db.models import Q
from django.utils import formats
from django.utils.translation import gettext as _

from apps.billing.models import Context, Coverage, Insurer, PointValue, Tariff, TariffCode
from apps.billing.money import to_cents
from apps.records.models import Patient

from . import BillingError

ZERO = Decimal("0")


class RuleViolation(BillingError):
    """A set of charges that breaks the tariff rules; `violations` holds each explained reason."""

    def __init__(self, violations: Sequence[str], intro: str = "") -> None:
        self.violations = list(violations)
        super().__init__("\n".join([intro, *self.violations] if intro else self.violations))


@dataclass(frozen=True)
class Priced:
    """The price of a quantity of one code: the snapshot a charge item keeps."""

    unit_points: Decimal | None
    point_value: Decimal | None
    unit_price: Decimal
    amount: Decimal


def valid_on(code: TariffCode, on: dt.date) -> bool:
    """Whether the code may be billed for an act on that date (both bounds included)."""
    return code.valid_from <= on and (code.valid_until is None or on <= code.valid_until)


def valid_between(on: dt.date) -> Q:
    """The filter of rows (codes, point values, coverages) valid on a date."""
    return Q(valid_from__lte=on) & (Q(valid_until__isnull=True) | Q(valid_until__gte=on))


def started_units(code: TariffCode, minutes: Decimal | int) -> Decimal:
    """The units an act of `minutes` minutes starts, before the maximum per act is applied."""
    minutes = Decimal(minutes)
    if minutes < code.min_minutes:
        return ZERO
    if not code.unit_minutes:
        return Decimal(1)
    beyond = minutes - code.min_minutes
    return (beyond / code.unit_minutes).to_integral_value(rounding=ROUND_CEILING)


def quantity_for(code: TariffCode, minutes: Decimal | int) -> Decimal:
    """How many units of `code` an act of `minutes` minutes is worth (0: it does not apply).

    One unit per act, or for a time code one unit per started period of `unit_minutes` beyond
    `min_minutes` (a "per further 5 minutes" code after a "first 5 minutes" one); capped at
    `max_quantity`.
    """
    units = started_units(code, minutes)
    if code.max_quantity is not None:
        units = min(units, Decimal(code.max_quantity))
    return units


def point_value_for(tariff: Tariff, canton: str, insurer: Insurer | None, on: dt.date) -> Decimal:
    """The CHF value of one point: the insurer's own value in the canton first, else the
    canton's; valid on the date. BillingError when the catalogue has none."""
    values = PointValue.objects.filter(valid_between(on), tariff=tariff, canton=canton).order_by(
        "-valid_from", "-pk"
    )
    found = None
    if insurer is not None:
        found = values.filter(insurer=insurer).first()
    if found is None:
        found = values.filter(insurer__isnull=True).first()
    if found is None:
        raise BillingError(
            _("The tariff %(tariff)s has no point value for canton %(canton)s on %(date)s.")
            % {"tariff": tariff.name, "canton": canton, "date": formats.date_format(on)}
        )
    return found.value


def price(
    code: TariffCode,
    quantity: Decimal | int,
    *,
    canton: str,
    insurer: Insurer | None = None,
    on: dt.date,
) -> Priced:
    """The price of `quantity` units of `code` for an act on `on`.

    The unit price is rounded to the centime first and the amount is unit price × quantity,
    rounded again: the invoice line then shows figures anyone can multiply and check.
    """
    quantity = Decimal(quantity)
    tariff = code.tariff
    if tariff.kind == Tariff.Kind.POINTS:
        if code.tax_points is None:
            raise BillingError(_("The code %(code)s has no tax points.") % {"code": code.code})
        value = point_value_for(tariff, canton, insurer, on)
        unit_price = to_cents(code.tax_points * value)
        return Priced(code.tax_points, value, unit_price, to_cents(unit_price * quantity))
    if code.price is None:
        raise BillingError(_("The code %(code)s has no price.") % {"code": code.code})
    unit_price = to_cents(code.price)
    return Priced(None, None, unit_price, to_cents(unit_price * quantity))


def incompatible_pairs(codes: Sequence[TariffCode]) -> set[tuple[int, int]]:
    """The (a, b) pairs of code ids among `codes` that cannot be billed together (both ways),
    in one query."""
    ids = {code.pk for code in codes}
    through = TariffCode.incompatible_with.through
    rows = through.objects.filter(from_tariffcode_id__in=ids, to_tariffcode_id__in=ids)
    pairs: set[tuple[int, int]] = set()
    for left, right in rows.values_list("from_tariffcode_id", "to_tariffcode_id"):
        pairs.add((left, right))
        pairs.add((right, left))
    return pairs


def violations(
    items: Sequence[tuple[TariffCode, Decimal]], *, context: str, on: dt.date
) -> list[str]:
    """Every rule the set of charges of one act breaks, each explained (empty: all good).

    Quantities of the same code are added up before the maximum per act is checked.
    """
    found: list[str] = []
    totals: dict[int, Decimal] = defaultdict(Decimal)
    codes: dict[int, TariffCode] = {}
    context_label = Context(context).label if context in Context.values else context
    for code, quantity in items:
        quantity = Decimal(quantity)
        if quantity <= 0:
            found.append(
                _("%(code)s: the quantity must be more than zero (it is %(quantity)s).")
                % {"code": code.code, "quantity": quantity}
            )
        totals[code.pk] += quantity
        if code.pk in codes:
            continue
        codes[code.pk] = code
        if not valid_on(code, on):
            found.append(_validity_message(code, on))
        if not code.applies_to(context):
            found.append(
                _("%(code)s does not apply to this kind of act (%(context)s).")
                % {"code": code.code, "context": context_label}
            )
    for pk, code in codes.items():
        if code.max_quantity is not None and totals[pk] > code.max_quantity:
            found.append(
                _("%(code)s: %(quantity)s units is more than the maximum of %(max)s per act.")
                % {"code": code.code, "quantity": totals[pk].normalize(), "max": code.max_quantity}
            )
    ordered = sorted(codes.values(), key=lambda code: (code.code, code.pk))
    pairs = incompatible_pairs(ordered)
    for index, first in enumerate(ordered):
        for second in ordered[index + 1 :]:
            if (first.pk, second.pk) in pairs:
                found.append(
                    _("%(first)s and %(second)s cannot be billed together for the same act.")
                    % {"first": first.code, "second": second.code}
                )
    return found


def _validity_message(code: TariffCode, on: dt.date) -> str:
    if code.valid_until is None:
        return _("%(code)s is not valid on %(date)s: it applies from %(start)s.") % {
            "code": code.code,
            "date": formats.date_format(on),
            "start": formats.date_format(code.valid_from),
        }
    return _("%(code)s is not valid on %(date)s: it applies from %(start)s to %(end)s.") % {
        "code": code.code,
        "date": formats.date_format(on),
        "start": formats.date_format(code.valid_from),
        "end": formats.date_format(code.valid_until),
    }


def basic_coverage(patient: Patient, on: dt.date) -> Coverage | None:
    """The patient's compulsory basic insurance valid on the date (the latest if several)."""
    return (
        Coverage.objects.filter(valid_between(on), patient=patient, kind=Coverage.Kind.BASIC)
        .select_related("insurer")
        .order_by("-valid_from", "-pk")
        .first()
    )


def is_covered(insurer: Insurer | None, code: TariffCode) -> bool:
    """Whether the insurer covers the code: an insurer that lists no codes covers every code.

    Matched by tariff and code rather than by row, so a new version of a listed code (a new
    `valid_from`) stays covered. Uses `covered_codes` when prefetched.
    """
    if insurer is None:
        return False
    listed = list(insurer.covered_codes.all())
    if not listed:
        return True
    return any(c.tariff_id == code.tariff_id and c.code == code.code for c in listed)


def patient_share(amount: Decimal, insurer: Insurer | None, covered: bool) -> Decimal:
    """What the patient pays of an amount: all of it without insurer or cover, else the
    insurer's co-payment percentage, to the centime."""
    if insurer is None or not covered:
        return to_cents(amount)
    return to_cents(Decimal(amount) * insurer.patient_share / 100)
