"""Amounts in CHF: Swiss invoices are payable in multiples of 5 centimes."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
FIVE_CENTIMES = Decimal("0.05")


def to_cents(amount: Decimal) -> Decimal:
    """Rounded to the centime (line amounts)."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def round_chf(amount: Decimal) -> Decimal:
    """Rounded to 0.05 CHF, halves up (2.325 → 2.35, 2.324 → 2.30)."""
    twentieths = (Decimal(amount) * 20).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return (twentieths / 20).quantize(CENT)
