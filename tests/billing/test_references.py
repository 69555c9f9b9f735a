"""Payment references: QR references (mod-10 recursive) and creditor references (ISO 11649)."""

from __future__ import annotations

import pytest
from stdnum import iso11649
from stdnum.ch import esr

from apps.billing.services.references import (
    creditor_reference,
    format_reference,
    is_qr_iban,
    is_valid_reference,
    normalize_reference,
    qr_reference,
    reference_for,
)

QR_IBAN = "CH4431999123000889012"
PLAIN_IBAN = "CH9300762011623852957"


def test_qr_reference_of_the_standards_example() -> None:
    # The Swiss Payment Standards' sample QR reference "21 00000 00003 13947 14300 09017":
    # its first 26 digits give back its check digit.
    assert qr_reference("21000000000313947143000901") == "210000000003139471430009017"


def test_qr_reference_of_an_invoice_number_is_27_digits_with_a_valid_check_digit() -> None:
    reference = qr_reference("2026-000123")

    assert len(reference) == 27
    assert reference.isdigit()
    assert reference.endswith("20260001237")
    assert esr.is_valid(reference)
    assert is_valid_reference(reference)


def test_a_changed_digit_breaks_the_qr_reference() -> None:
    reference = qr_reference("2026-000123")
    altered = reference[:20] + str((int(reference[20]) + 1) % 10) + reference[21:]

    assert not is_valid_reference(altered)


def test_creditor_reference_is_iso_11649() -> None:
    reference = creditor_reference("2026-000123")

    assert reference.startswith("RF")
    assert reference[4:] == "2026000123"
    assert iso11649.is_valid(reference)
    assert is_valid_reference(reference)
    # ISO 11649's own example.
    assert creditor_reference("539007547034") == "RF18539007547034"


def test_qr_iban_is_recognised_by_its_institution_id() -> None:
    assert is_qr_iban(QR_IBAN)
    assert is_qr_iban("CH44 3199 9123 0008 8901 2")
    assert not is_qr_iban(PLAIN_IBAN)
    assert not is_qr_iban("DE89370400440532013000")
    assert not is_qr_iban("CH4431999123000889013")  # wrong IBAN check digits


def test_reference_follows_the_account() -> None:
    assert reference_for("2026-000001", QR_IBAN) == qr_reference("2026-000001")
    assert reference_for("2026-000001", PLAIN_IBAN) == creditor_reference("2026-000001")


def test_references_of_different_invoices_differ() -> None:
    references = {reference_for(f"2026-{n:06d}", QR_IBAN) for n in range(1, 500)}

    assert len(references) == 499


def test_normalize_and_format_round_trip() -> None:
    reference = qr_reference("2026-000123")
    printed = format_reference(reference)

    assert printed == "00 00000 00000 00002 02600 01237"
    assert normalize_reference(printed) == reference
    assert format_reference("rf46 2026 0001 23") == "RF46 2026 0001 23"
    assert normalize_reference(" rf46 2026 0001 23 ") == "RF462026000123"


@pytest.mark.parametrize("number", ["", "no digits", "1" * 27])
def test_impossible_qr_references_are_refused(number: str) -> None:
    with pytest.raises(ValueError):
        qr_reference(number)


def test_impossible_creditor_references_are_refused() -> None:
    with pytest.raises(ValueError):
        creditor_reference("A" * 22)
