"""The billing reference data: the tariff catalogue, insurers and point values, and the checks
an administrator's entries must pass (used by the admin forms and by the loader alike).

`fixtures/billing/catalogue.json` holds a small illustrative Swiss catalogue (TARDOC-like codes,
cantonal point values, four fictitious insurers). `load_billing_reference()` validates the whole
file first and writes nothing when any entry is wrong; then, in one transaction, it creates the
rows that are missing, found by natural key: Tariff by code, TariffCode by (tariff, code,
valid_from), Insurer by GLN, PointValue by (tariff, canton, insurer, valid_from). Rows already
there are left as they are, since administrators maintain the catalogue in the admin and a
demo restart must not undo their changes; `update=True` makes the rows the file names match it
again (fields, incompatible pairs, covered codes). Rows the file does not name are never touched.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import translation
from django.utils.translation import gettext as _
from stdnum import ean, iban
from stdnum.ch import vat as ch_vat
from stdnum.exceptions import ValidationError as StdnumError

from apps.records.reference import ReferenceDataError

from .models import Context, Insurer, PointValue, Tariff, TariffCode

CANTONS = frozenset(
    "AG AI AR BE BL BS FR GE GL GR JU LU NE NW OW SG SH SO SZ TG TI UR VD VS ZG ZH".split()
)
# QR-bills are payable to Swiss and Liechtenstein accounts only.
QR_BILL_COUNTRIES = ("CH", "LI")
ZSR_RE = re.compile(r"^[A-Z]\d{6}$")


# ---------------------------------------------------------------------------------------------
# Checks shared with the admin forms: each returns why a value is wrong, or "".


def gln_problem(gln: str) -> str:
    """A GLN is 13 digits ending with a GS1 (EAN-13) mod-10 check digit."""
    if not re.fullmatch(r"\d{13}", gln):
        return _("A GLN has exactly 13 digits.")
    if not ean.is_valid(gln):
        return _("This GLN has a wrong check digit (mistyped?).")
    return ""


def iban_problem(value: str) -> str:
    """An IBAN (or QR-IBAN) of a Swiss or Liechtenstein account, as QR-bills require."""
    try:
        number = iban.validate(value)
    except StdnumError:
        return _("This is not a valid IBAN (check the digits).")
    if number[:2] not in QR_BILL_COUNTRIES:
        return _("QR-bills need a Swiss or Liechtenstein account (CH… or LI…).")
    return ""


def vat_number_problem(value: str) -> str:
    if value and not ch_vat.is_valid(value):
        return _("Expected a Swiss VAT number such as CHE-123.456.788 TVA (check digit included).")
    return ""


def zsr_problem(value: str) -> str:
    if value and not ZSR_RE.match(value):
        return _("A ZSR/RCC number is a capital letter followed by 6 digits (e.g. Z123456).")
    return ""


def canton_problem(value: str) -> str:
    if value not in CANTONS:
        return _("%(value)s is not a Swiss canton code (VD, GE, ZH…).") % {"value": value}
    return ""


def period_problem(valid_from: dt.date | None, valid_until: dt.date | None) -> str:
    if valid_from and valid_until and valid_until < valid_from:
        return _("The end of validity comes before its start.")
    return ""


def code_problems(
    kind: str,
    *,
    tax_points: Decimal | None,
    price: Decimal | None,
    unit_minutes: int | None,
    max_quantity: int | None,
    contexts: Iterable[str],
    vat_rate: Decimal | None = None,
) -> dict[str, str]:
    """Why a tariff code's values do not fit its tariff, by field name ("" key: the code)."""
    problems: dict[str, str] = {}
    if kind == Tariff.Kind.POINTS:
        if tax_points is None:
            problems["tax_points"] = _("A code of a points tariff needs its tax points.")
        elif tax_points <= 0:
            problems["tax_points"] = _("Tax points must be above zero.")
        if price is not None:
            problems["price"] = _("A points tariff prices by tax points: leave the price empty.")
    elif kind == Tariff.Kind.PRICE:
        if price is None:
            problems["price"] = _("A code of a price tariff needs its price.")
        elif price <= 0:
            problems["price"] = _("The price must be above zero.")
        if tax_points is not None:
            problems["tax_points"] = _("A price tariff has no tax points: leave them empty.")
    if unit_minutes == 0:
        problems["unit_minutes"] = _("Leave empty for one unit per act, or give the minutes.")
    if max_quantity == 0:
        problems["max_quantity"] = _("Leave empty for no maximum, or allow at least one.")
    if vat_rate is not None and not Decimal(0) <= vat_rate < Decimal(100):
        problems["vat_rate"] = _("A VAT rate is a percentage between 0 and 100.")
    if not set(contexts):
        problems[""] = _("Say which kinds of consultation the code applies to.")
    return problems


def code_contexts(code: TariffCode) -> list[str]:
    flags = {
        Context.VIDEO: code.for_video,
        Context.IN_PERSON: code.for_in_person,
        Context.MONITORING: code.for_monitoring,
    }
    return [str(context) for context, on in flags.items() if on]


# ---------------------------------------------------------------------------------------------
# The file


def default_path() -> Path:
    return Path(settings.BASE_DIR) / "fixtures" / "billing" / "catalogue.json"


CodeRef = tuple[str, str]  # (tariff code, code)
CONTEXT_FLAGS = {
    Context.VIDEO: "for_video",
    Context.IN_PERSON: "for_in_person",
    Context.MONITORING: "for_monitoring",
}
SECTIONS = ("tariffs", "codes", "incompatible", "insurers", "point_values")
# Keys of the file that are not model fields (resolved to relations or flags).
EXTRA_KEYS = {
    "codes": {"tariff", "contexts"},
    "insurers": {"covered_codes"},
    "point_values": {"tariff", "insurer"},
}


@dataclass
class Catalogue:
    """The file's entries, cleaned: model field values plus the references between rows."""

    tariffs: list[dict[str, Any]] = field(default_factory=list)
    codes: list[dict[str, Any]] = field(default_factory=list)  # with "tariff": its code
    incompatible: list[tuple[CodeRef, CodeRef]] = field(default_factory=list)
    insurers: list[dict[str, Any]] = field(default_factory=list)  # with "covered_codes"
    point_values: list[dict[str, Any]] = field(default_factory=list)  # "tariff", "insurer": keys


def _fields(model: type[models.Model], exclude: Iterable[str] = ()) -> dict[str, Any]:
    skip = {"fhir_id", "version", "updated_at", *exclude}
    return {
        f.name: f
        for f in model._meta.concrete_fields
        if not f.primary_key and f.name not in skip and not f.is_relation
    }


def _clean(
    model: type[models.Model], raw: Any, where: str, extra: set[str]
) -> tuple[dict[str, Any], list[str]]:
    """The entry's model field values (defaults for those left out), or its problems."""
    if not isinstance(raw, dict):
        return {}, [f"{where}: must be an object"]
    # A code says where it applies with "contexts", not with the flags themselves.
    fields = _fields(model, exclude=CONTEXT_FLAGS.values() if model is TariffCode else ())
    problems = []
    unknown = sorted(set(raw) - set(fields) - extra)
    if unknown:
        problems.append(f"{where}: unknown key(s) {', '.join(unknown)}")
    entry: dict[str, Any] = {name: raw[name] for name in extra if name in raw}
    for name, model_field in fields.items():
        if name not in raw:
            if not model_field.has_default() and not model_field.null and not model_field.blank:
                problems.append(f"{where}: {name} is missing")
            entry[name] = model_field.get_default()
            continue
        value = raw[name]
        if value is None and not model_field.null:
            problems.append(f"{where}: {name} must not be null")
            continue
        if isinstance(model_field, models.DecimalField) and isinstance(value, bool | str):
            problems.append(f"{where}: {name} must be a number")
            continue
        try:
            entry[name] = None if value is None else model_field.clean(value, None)
        except ValidationError as exc:
            problems.append(f"{where}: {name}: {' '.join(exc.messages)}")
    return entry, problems


def _ref(value: Any) -> CodeRef | None:
    if isinstance(value, str) and value.count(":") == 1:
        tariff, code = value.split(":")
        return tariff, code
    return None


def _check_tariffs(data: Mapping[str, Any], catalogue: Catalogue, problems: list[str]) -> None:
    seen: set[str] = set()
    for index, raw in enumerate(data.get("tariffs") or []):
        where = f"tariffs[{index}]"
        entry, found = _clean(Tariff, raw, where, set())
        if not found and entry["code"] in seen:
            found.append(f"{where}: tariff {entry['code']} is listed twice")
        problems += found
        if not found:
            seen.add(entry["code"])
            catalogue.tariffs.append(entry)


def _check_codes(data: Mapping[str, Any], catalogue: Catalogue, problems: list[str]) -> None:
    # A code may belong to a tariff of the file or to one already in the database.
    kinds = dict(Tariff.objects.filter(code__in=_raw_tariffs(data)).values_list("code", "kind"))
    kinds.update({t["code"]: t["kind"] for t in catalogue.tariffs})
    seen: set[tuple[str, str, dt.date]] = set()
    for index, raw in enumerate(data.get("codes") or []):
        where = f"codes[{index}]"
        entry, found = _clean(TariffCode, raw, where, EXTRA_KEYS["codes"])
        contexts = entry.get("contexts") or []
        if found:
            problems += found
            continue
        if entry.get("tariff") not in kinds:
            problems.append(f"{where}: unknown tariff {entry.get('tariff')!r}")
            continue
        if not isinstance(contexts, list) or set(contexts) - set(Context.values):
            problems.append(f"{where}: contexts must be a list of {', '.join(Context.values)}")
            continue
        for name, problem in code_problems(
            kinds[entry["tariff"]],
            tax_points=entry["tax_points"],
            price=entry["price"],
            unit_minutes=entry["unit_minutes"],
            max_quantity=entry["max_quantity"],
            contexts=contexts,
            vat_rate=entry["vat_rate"],
        ).items():
            found.append(f"{where}: {name or 'code'}: {problem}")
        if problem := period_problem(entry["valid_from"], entry["valid_until"]):
            found.append(f"{where}: {problem}")
        key = (entry["tariff"], entry["code"], entry["valid_from"])
        if key in seen:
            found.append(
                f"{where}: {entry['tariff']}:{entry['code']} from {key[2]} is listed twice"
            )
        problems += found
        if not found:
            seen.add(key)
            for context, flag in CONTEXT_FLAGS.items():
                entry[flag] = context in contexts
            del entry["contexts"]
            catalogue.codes.append(entry)


def _raw_tariffs(data: Mapping[str, Any]) -> list[str]:
    return [str(raw.get("tariff")) for raw in data.get("codes") or [] if isinstance(raw, dict)]


def _check_refs(data: Mapping[str, Any], catalogue: Catalogue, problems: list[str]) -> None:
    known = {(c["tariff"], c["code"]) for c in catalogue.codes}
    for index, pair in enumerate(data.get("incompatible") or []):
        refs = [_ref(value) for value in pair] if isinstance(pair, list) else []
        if len(refs) != 2 or None in refs:
            problems.append(f'incompatible[{index}]: expected two "tariff:code" references')
            continue
        missing = [f"{r[0]}:{r[1]}" for r in refs if r not in known]  # type: ignore[index]
        if missing:
            problems.append(f"incompatible[{index}]: unknown code(s) {', '.join(missing)}")
        elif refs[0] == refs[1]:
            problems.append(f"incompatible[{index}]: a code cannot exclude itself")
        else:
            catalogue.incompatible.append((refs[0], refs[1]))  # type: ignore[arg-type]
    seen: set[str] = set()
    for index, raw in enumerate(data.get("insurers") or []):
        where = f"insurers[{index}]"
        entry, found = _clean(Insurer, raw, where, EXTRA_KEYS["insurers"])
        if not found:
            if problem := gln_problem(entry["gln"]):
                found.append(f"{where}: {problem}")
            if entry["gln"] in seen:
                found.append(f"{where}: GLN {entry['gln']} is listed twice")
            if not Decimal(0) <= entry["patient_share"] <= Decimal(100):
                found.append(f"{where}: patient_share is a percentage between 0 and 100")
            if entry["connector"] == Insurer.Connector.FHIR and not entry["claim_url"]:
                found.append(f"{where}: a FHIR connector needs its claim_url")
            covered = [_ref(value) for value in entry.get("covered_codes") or []]
            unknown = [
                f"{r[0]}:{r[1]}" if r else repr(value)
                for r, value in zip(covered, entry.get("covered_codes") or [], strict=True)
                if r not in known
            ]
            if unknown:
                found.append(f"{where}: covered_codes names unknown code(s) {', '.join(unknown)}")
            entry["covered_codes"] = covered
        problems += found
        if not found:
            seen.add(entry["gln"])
            catalogue.insurers.append(entry)


def _check_point_values(data: Mapping[str, Any], catalogue: Catalogue, problems: list[str]) -> None:
    raw_entries = [raw for raw in data.get("point_values") or [] if isinstance(raw, dict)]
    in_file = {t["code"]: t["kind"] for t in catalogue.tariffs}
    points = {
        code
        for code, kind in Tariff.objects.filter(
            code__in=[str(raw.get("tariff")) for raw in raw_entries]
        ).values_list("code", "kind")
        if code not in in_file and kind == Tariff.Kind.POINTS
    } | {code for code, kind in in_file.items() if kind == Tariff.Kind.POINTS}
    insurers = {i["gln"] for i in catalogue.insurers} | set(
        Insurer.objects.filter(
            gln__in=[str(raw.get("insurer")) for raw in raw_entries]
        ).values_list("gln", flat=True)
    )
    seen: set[tuple[Any, ...]] = set()
    for index, raw in enumerate(data.get("point_values") or []):
        where = f"point_values[{index}]"
        entry, found = _clean(PointValue, raw, where, EXTRA_KEYS["point_values"])
        if not found:
            if entry.get("tariff") not in points:
                found.append(f"{where}: {entry.get('tariff')!r} is not a points tariff here")
            if problem := canton_problem(entry["canton"]):
                found.append(f"{where}: {problem}")
            insurer = entry.setdefault("insurer", None)
            if insurer is not None and insurer not in insurers:
                found.append(f"{where}: unknown insurer GLN {insurer}")
            if entry["value"] <= 0:
                found.append(f"{where}: value must be above zero")
            if problem := period_problem(entry["valid_from"], entry["valid_until"]):
                found.append(f"{where}: {problem}")
            key = (entry.get("tariff"), entry["canton"], insurer, entry["valid_from"])
            if key in seen:
                found.append(f"{where}: listed twice")
            seen.add(key)
        problems += found
        if not found:
            catalogue.point_values.append(entry)


def check_catalogue(path: str | Path | None = None) -> Catalogue:
    """The file's cleaned entries; raises ReferenceDataError listing every problem."""
    source = Path(path) if path is not None else default_path()
    try:
        data = json.loads(source.read_text(encoding="utf-8"), parse_float=Decimal)
    except FileNotFoundError:
        raise ReferenceDataError([f"{source}: file not found"]) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReferenceDataError([f"{source.name}: not valid JSON ({exc})"]) from None
    if not isinstance(data, dict) or set(data) - set(SECTIONS):
        raise ReferenceDataError([f"{source.name}: an object with the keys {', '.join(SECTIONS)}"])
    catalogue = Catalogue()
    problems: list[str] = []
    # The messages of Django's validators follow the active language; the file's are English.
    with translation.override("en"):
        _check_tariffs(data, catalogue, problems)
        _check_codes(data, catalogue, problems)
        _check_refs(data, catalogue, problems)
        _check_point_values(data, catalogue, problems)
    if problems:
        raise ReferenceDataError(problems)
    return catalogue


# ---------------------------------------------------------------------------------------------
# Loading


class _Counter:
    def __init__(self) -> None:
        self.created = self.updated = self.kept = 0

    def upsert(
        self,
        model: type[models.Model],
        existing: models.Model | None,
        values: dict[str, Any],
        update: bool,
    ) -> tuple[Any, bool]:
        """The row (created when missing, brought in line with `values` when `update`)."""
        if existing is None:
            self.created += 1
            return model._default_manager.create(**values), True
        changed = [name for name, value in values.items() if getattr(existing, name) != value]
        if update and changed:
            for name in changed:
                setattr(existing, name, values[name])
            existing.save(update_fields=changed)
            self.updated += 1
        else:
            self.kept += 1
        return existing, update


def load_billing_reference(
    path: str | Path | None = None, *, update: bool = False
) -> dict[str, int]:
    """Create the missing catalogue rows (all of the file's with `update`), in one transaction.

    Returns the number of entries per section and how many rows were created, updated and
    kept as they were. Raises ReferenceDataError, writing nothing, when the file is invalid.
    """
    catalogue = check_catalogue(path)
    counter = _Counter()
    with transaction.atomic():
        tariffs: dict[str, Tariff] = {}
        for entry in catalogue.tariffs:
            tariff_row = Tariff.objects.filter(code=entry["code"]).first()
            tariffs[entry["code"]], _changed = counter.upsert(Tariff, tariff_row, entry, update)
        named = {e["tariff"] for e in catalogue.codes + catalogue.point_values}
        for tariff_code in named - set(tariffs):
            tariffs[tariff_code] = Tariff.objects.get(code=tariff_code)
        codes: dict[CodeRef, list[TariffCode]] = {}
        writable: set[int] = set()  # codes whose relations the file may set
        for entry in catalogue.codes:
            values = {**entry, "tariff": tariffs[entry["tariff"]]}
            code_row = TariffCode.objects.filter(
                tariff=values["tariff"], code=entry["code"], valid_from=entry["valid_from"]
            ).first()
            code, write = counter.upsert(TariffCode, code_row, values, update)
            codes.setdefault((entry["tariff"], entry["code"]), []).append(code)
            if write:
                writable.add(code.pk)
        _link_incompatible(catalogue, codes, writable, update)
        insurers: dict[str, Insurer] = {}
        for entry in catalogue.insurers:
            values = {k: v for k, v in entry.items() if k != "covered_codes"}
            insurer_row = Insurer.objects.filter(gln=entry["gln"]).first()
            insurer, write = counter.upsert(Insurer, insurer_row, values, update)
            insurers[entry["gln"]] = insurer
            if write:
                covered = [code for ref in entry["covered_codes"] for code in codes[ref]]
                insurer.covered_codes.set(covered)
        for entry in catalogue.point_values:
            values = {
                **entry,
                "tariff": tariffs[entry["tariff"]],
                "insurer": _insurer(insurers, entry["insurer"]),
            }
            value_row = PointValue.objects.filter(
                tariff=values["tariff"],
                canton=entry["canton"],
                insurer=values["insurer"],
                valid_from=entry["valid_from"],
            ).first()
            counter.upsert(PointValue, value_row, values, update)
    counts = {name: len(getattr(catalogue, name)) for name in SECTIONS}
    return {
        **counts,
        "created": counter.created,
        "updated": counter.updated,
        "kept": counter.kept,
    }


def _insurer(insurers: dict[str, Insurer], gln: str | None) -> Insurer | None:
    if not gln:
        return None
    if gln not in insurers:
        insurers[gln] = Insurer.objects.get(gln=gln)
    return insurers[gln]


def _link_incompatible(
    catalogue: Catalogue,
    codes: dict[CodeRef, list[TariffCode]],
    writable: set[int],
    update: bool,
) -> None:
    """Set the file's incompatible pairs on the codes it may write (new ones, or all with
    `update`, which also drops the pairs of those codes that the file no longer lists)."""
    wanted: dict[int, set[int]] = {}
    for left, right in catalogue.incompatible:
        for a in codes[left]:
            for b in codes[right]:
                wanted.setdefault(a.pk, set()).add(b.pk)
                wanted.setdefault(b.pk, set()).add(a.pk)
    for versions in codes.values():
        for code in versions:
            if code.pk not in writable:
                continue
            targets = wanted.get(code.pk, set())
            if update:
                code.incompatible_with.set(targets)
            elif targets:
                code.incompatible_with.add(*targets)
