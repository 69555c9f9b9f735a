"""The billing reference catalogue: valid, loaded once by natural key, checked before anything
is written, and never overriding what an administrator changed unless asked to."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from stdnum import ean

from apps.billing.models import Insurer, PointValue, Tariff, TariffCode
from apps.billing.reference import (
    check_catalogue,
    default_path,
    gln_problem,
    iban_problem,
    load_billing_reference,
)
from apps.billing.services.references import is_qr_iban
from apps.records.reference import ReferenceDataError

CANTONS = {"VD", "GE", "FR", "VS", "NE", "BE", "ZH"}


def _catalogue() -> dict[str, Any]:
    return json.loads(default_path().read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.django_db
def test_the_shipped_catalogue_loads_with_its_rules() -> None:
    counts = load_billing_reference()

    assert counts["created"] == 2 + 9 + 4 + 8
    tardoc = Tariff.objects.get(code="tardoc")
    assert tardoc.kind == Tariff.Kind.POINTS
    video_base = TariffCode.objects.get(code="AA.05.0010")
    further = TariffCode.objects.get(code="AA.05.0020")
    assert video_base.for_video and not video_base.for_in_person
    assert (further.unit_minutes, further.min_minutes, further.max_quantity) == (5, 5, 4)
    # Incompatible pairs hold both ways.
    office = TariffCode.objects.get(code="AA.00.0010")
    assert office in video_base.incompatible_with.all()
    assert video_base in office.incompatible_with.all()
    monitoring = TariffCode.objects.get(code="TM.0010")
    assert monitoring.price == Decimal("4.80") and monitoring.unit_minutes == 24 * 60
    assert TariffCode.objects.get(code="AA.15.0010").automatic is False
    assert TariffCode.objects.get(code="AD.0010").vat_rate == Decimal("8.10")
    # Point values for the cantons, realistic, one insurer-specific.
    cantonal = PointValue.objects.filter(tariff=tardoc, insurer__isnull=True)
    assert set(cantonal.values_list("canton", flat=True)) == CANTONS
    assert all(Decimal("0.83") <= value.value <= Decimal("0.96") for value in cantonal)
    assert PointValue.objects.filter(insurer__isnull=False).count() == 1
    # Four insurers with valid GLNs, both payment modes, a 10 % patient share.
    insurers = list(Insurer.objects.all())
    assert len(insurers) == 4
    assert all(ean.is_valid(insurer.gln) for insurer in insurers)
    assert {insurer.payment_mode for insurer in insurers} == set(Insurer.PaymentMode.values)
    assert {insurer.patient_share for insurer in insurers} == {Decimal("10.00")}
    leman = Insurer.objects.get(gln="7601003001013")
    assert leman.covered_codes.count() == 8
    assert not leman.covered_codes.filter(code="AD.0010").exists()
    assert Insurer.objects.get(gln="7601003004045").covered_codes.count() == 0  # covers all


@pytest.mark.django_db
def test_loading_twice_creates_nothing_more() -> None:
    load_billing_reference()
    before = (TariffCode.objects.count(), Insurer.objects.count(), PointValue.objects.count())

    counts = load_billing_reference()

    assert counts["created"] == 0 and counts["updated"] == 0
    assert counts["kept"] == 23
    assert (TariffCode.objects.count(), Insurer.objects.count(), PointValue.objects.count()) == (
        before
    )


@pytest.mark.django_db
def test_administrators_changes_are_kept_unless_the_file_is_applied_again() -> None:
    load_billing_reference()
    code = TariffCode.objects.get(code="AA.05.0010")
    office = TariffCode.objects.get(code="AA.00.0010")
    TariffCode.objects.filter(pk=code.pk).update(tax_points=Decimal("20.00"))
    code.incompatible_with.remove(office)

    load_billing_reference()
    code.refresh_from_db()
    assert code.tax_points == Decimal("20.00")
    assert office not in code.incompatible_with.all()

    counts = load_billing_reference(update=True)
    code.refresh_from_db()
    assert counts["updated"] == 1
    assert code.tax_points == Decimal("18.52")
    assert office in code.incompatible_with.all()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d["codes"][0].pop("tax_points"), "needs its tax points"),
        (lambda d: d["codes"][6].update(tax_points=5), "leave them empty"),
        (lambda d: d["codes"][0].update(valid_until="2024-01-01"), "comes before its start"),
        (lambda d: d["codes"][0].update(contexts=["phone"]), "contexts must be a list"),
        (lambda d: d["codes"][1].update(unit_minutes=0), "give the minutes"),
        (lambda d: d["codes"].append(dict(d["codes"][0])), "listed twice"),
        (lambda d: d["codes"][0].update(tariff="nope"), "unknown tariff"),
        (lambda d: d["codes"][0].update(colour="red"), "unknown key(s) colour"),
        (lambda d: d["incompatible"].append(["tardoc:XX", "tardoc:AA.00.0010"]), "unknown code"),
        (lambda d: d["insurers"][0].update(gln="7601003001014"), "wrong check digit"),
        (lambda d: d["insurers"][1].update(claim_url=""), "needs its claim_url"),
        (lambda d: d["insurers"][0].update(patient_share=150), "between 0 and 100"),
        (lambda d: d["insurers"][0]["covered_codes"].append("tardoc:ZZ"), "unknown code"),
        (lambda d: d["point_values"][0].update(canton="XY"), "not a Swiss canton"),
        (lambda d: d["point_values"][0].update(tariff="forfaits-vh"), "not a points tariff"),
        (lambda d: d["point_values"][0].update(value="0.9"), "must be a number"),
        (lambda d: d["point_values"][7].update(insurer="7601003009999"), "unknown insurer"),
    ],
)
@pytest.mark.django_db
def test_an_invalid_file_writes_nothing_and_says_why(
    tmp_path: Path, change: Any, problem: str
) -> None:
    data = _catalogue()
    change(data)
    path = _write(tmp_path, data)

    with pytest.raises(ReferenceDataError) as raised:
        load_billing_reference(path)

    assert problem in str(raised.value)
    assert not Tariff.objects.exists() and not Insurer.objects.exists()


@pytest.mark.django_db
def test_the_command_prints_its_counts_and_refuses_a_bad_file(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command("load_billing_reference", stdout=out)
    assert json.loads(out.getvalue())["created"] == 23

    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("load_billing_reference", "--file", str(_write_text(tmp_path, "{")))


def _write_text(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broken.json"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_digits_and_accounts() -> None:
    assert gln_problem("7601003001013") == ""
    assert "check digit" in gln_problem("7601003001012")
    assert iban_problem("CH44 3199 9123 0008 8901 2") == ""
    assert "Liechtenstein" in iban_problem("DE89370400440532013000")
    assert "not a valid IBAN" in iban_problem("CH4431999123000889013")
    assert is_qr_iban("CH44 3199 9123 0008 8901 2")
    assert not is_qr_iban("CH9300762011623852957")


@pytest.mark.django_db
def test_the_shipped_file_is_valid_on_its_own() -> None:
    catalogue = check_catalogue()

    assert len(catalogue.codes) == 9 and len(catalogue.incompatible) == 2
