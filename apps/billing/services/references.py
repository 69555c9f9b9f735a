"""Payment references printed on the QR-bill and read back from the bank's files.

Two kinds, chosen by the creditor account (Swiss Payment Standards, QR-bill implementation
guidelines § 3.4):

- a **QR reference** (QRR) for a QR-IBAN: 27 digits, the last one a modulo-10 recursive check
  digit (the old ESR/BVR algorithm);
- a **creditor reference** (SCOR, ISO 11649) for a plain IBAN: "RF", two check digits
  (ISO 7064 mod 97-10) and up to 21 letters or digits.

Both are derived from the invoice number alone, so each invoice has its own and a reference
found in a payment leads back to exactly one invoice (`Invoice.reference` is unique).
"""

from __future__ import annotations

import re

from stdnum import iban as iban_checker
from stdnum import iso11649
from stdnum.ch import esr
from stdnum.iso7064 import mod_97_10

QR_IID_FIRST = 30000
QR_IID_LAST = 31999
QR_REFERENCE_LENGTH = 27
CREDITOR_BODY_MAX = 21


def _compact(text: str) -> str:
    return re.sub(r"\s+", "", text or "").upper()


def is_qr_iban(iban: str) -> bool:
    """A CH/LI IBAN whose institution id (positions 5–9) is in the QR-IID range 30000–31999."""
    compact = _compact(iban)
    if compact[:2] not in ("CH", "LI") or not iban_checker.is_valid(compact):
        return False
    return QR_IID_FIRST <= int(compact[4:9]) <= QR_IID_LAST


def qr_reference(number: str) -> str:
    """The 27-digit QR reference of an invoice number (its digits, zero-padded, + check digit)."""
    digits = re.sub(r"\D", "", number)
    if not digits or len(digits) > QR_REFERENCE_LENGTH - 1:
        raise ValueError(f"cannot make a QR reference of {number!r}")
    body = digits.zfill(QR_REFERENCE_LENGTH - 1)
    return body + esr.calc_check_digit(body)


def creditor_reference(number: str) -> str:
    """The ISO 11649 creditor reference of an invoice number ("RF" + check + its alphanumerics)."""
    body = re.sub(r"[^0-9A-Z]", "", number.upper())
    if not body or len(body) > CREDITOR_BODY_MAX:
        raise ValueError(f"cannot make a creditor reference of {number!r}")
    return "RF" + mod_97_10.calc_check_digits(body + "RF") + body


def reference_for(invoice_number: str, iban: str) -> str:
    """The reference an invoice carries: a QR reference on a QR-IBAN, otherwise an RF one."""
    if is_qr_iban(iban):
        return qr_reference(invoice_number)
    return creditor_reference(invoice_number)


def normalize_reference(text: str) -> str:
    """A reference as stored: without spaces, upper case ("RF46 2026 …" → "RF462026…")."""
    return _compact(text)


def is_valid_reference(text: str) -> bool:
    """Whether `text` is a well-formed QR or creditor reference (check digits included)."""
    reference = normalize_reference(text)
    if reference.startswith("RF"):
        return bool(iso11649.is_valid(reference))
    return len(reference) == QR_REFERENCE_LENGTH and bool(esr.is_valid(reference))


def format_reference(reference: str) -> str:
    """Grouped for people, as the QR-bill prints it: QR "21 00000 00003 …", RF in fours."""
    reference = normalize_reference(reference)
    if reference.startswith("RF"):
        return " ".join(reference[i : i + 4] for i in range(0, len(reference), 4))
    if len(reference) == QR_REFERENCE_LENGTH:
        return reference[:2] + " " + " ".join(reference[i : i + 5] for i in range(2, 27, 5))
    return reference
