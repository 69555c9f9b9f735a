"""FHIR search: parameters to ORM filters, sorting, paging, _include, _revinclude, _summary.

Parameter types: token (`system|code`, `code`, `|code`, `system|`), string (starts with, case
and accent sensitive as Django's `istartswith`; `:exact`, `:contains`), date (prefixes eq, ne,
gt, lt, ge, le, sa, eb with the value's precision), reference (`Type/id` or `id`; where the
parameter declares an `identifier` path, also `:identifier=system|value`, `system|value` or a
bare identifier value).
Paging is by offset (`_offset`) with `_count` (default 50, at most 500) and next/previous links.

`with_related` loads what each type's mapper reads, so a page or a read costs the same number of
queries whatever its size (tests/interop/test_fhir_queries.py).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db import models
from django.db.models import OuterRef, Prefetch, Q, Subquery
from django.http import HttpRequest, QueryDict
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.devices.models import Device
from apps.records.models import (
    AllergyIntolerance,
    CareTeam,
    CareTeamMember,
    ClinicalNote,
    Condition,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    MedicationRequest,
    MedicationStatement,
    Observation,
    ObservationNote,
    Patient,
    Practitioner,
    PractitionerRole,
)

from .errors import FhirHttpError
from .registry import DATE, REFERENCE, STRING, TOKEN, ResourceType, SearchParam

DEFAULT_COUNT = 50
MAX_COUNT = 500
CONTROL = {
    "_count",
    "_offset",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_format",
    "_elements",
}
DATE_VALUE = re.compile(
    r"^(?P<prefix>eq|ne|gt|lt|ge|le|sa|eb|ap)?(?P<value>\d{4}(-\d{2}(-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?)?)?)$"
)
UUID = re.compile(r"^[0-9a-fA-F-]{36}$")


def _person(path: str) -> Prefetch[Any]:
    """A user, with the Practitioner they are referenced by (a reverse one-to-one)."""
    return Prefetch(path, queryset=User.objects.select_related("practitioner"))


def _members() -> Prefetch[Any]:
    members = CareTeamMember.objects.select_related("user__practitioner").order_by("pk")
    return Prefetch("members", queryset=members)


def _notes() -> Prefetch[Any]:
    return Prefetch(
        "notes", queryset=ObservationNote.objects.select_related("author__practitioner")
    )


def _results() -> Prefetch[Any]:
    # The report references its results by id only.
    results = Observation.objects.only("pk", "fhir_id", "report_id").order_by("effective_at", "pk")
    return Prefetch("results", queryset=results)


def _recorder() -> Prefetch[Any]:
    return _person("recorded_by")


# What each model's mapper (apps.records.fhir) reads beyond its own row: (select_related,
# prefetches). Only the patient and the code are joined: every other join added ~1 ms of planning
# to each query (EXPLAIN: 0.5 ms with none, 5 ms with six), while a prefetch is a cheap `pk IN`
# query, skipped when no row has the link. Models not listed keep their registration's loading.
RELATED: dict[type[models.Model], tuple[tuple[str, ...], tuple[Callable[[], Any], ...]]] = {
    Organization: ((), ()),
    Patient: (("organization",), ()),
    Practitioner: (("user",), ()),
    PractitionerRole: (("practitioner", "organization"), ()),
    CareTeam: (("patient", "organization"), (_members,)),
    Encounter: (("patient",), (lambda: _person("practitioner"), _recorder)),
    Condition: (("patient", "code"), (lambda: "encounter", _recorder)),
    AllergyIntolerance: (("patient", "substance"), (_recorder,)),
    MedicationStatement: (("patient", "medication"), (lambda: "prescription", _recorder)),
    MedicationRequest: (
        ("patient", "medication", "prescription"),
        (
            lambda: "prescription__encounter",
            lambda: _person("prescription__prescriber"),
            _recorder,
        ),
    ),
    Observation: (
        ("patient", "code"),
        (_notes, lambda: "encounter", lambda: "report", _recorder),
    ),
    DiagnosticReport: (
        ("patient", "code"),
        (lambda: "document", lambda: "encounter", _results, _recorder),
    ),
    DocumentReference: (("patient",), (lambda: "encounter", _recorder)),
    ClinicalNote: (("patient",), (lambda: "encounter", lambda: "amends", _recorder)),
    Device: (("patient",), ()),
}


def _device_fhir_id() -> Subquery:
    """The fhir_id of the Device an observation came from (rows store its public device id)."""
    devices = Device.objects.filter(device_id=OuterRef("device_id")).order_by()
    return Subquery(devices.values("fhir_id")[:1])


# Values the mappers read that are not on the row, as annotations: computed for the returned
# rows only (one unique-index probe each), not one query per row.
ANNOTATIONS: dict[type[models.Model], dict[str, Callable[[], Any]]] = {
    Observation: {"device_fhir_id": _device_fhir_id},
}


def with_related(model: type[models.Model], queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """`queryset` loading, in a fixed number of queries, what `model`'s mapper reads."""
    spec = RELATED.get(model)
    if spec is None:
        return queryset
    select, prefetch = spec
    # Replace the registration's loading: its joins cost planning time, and a plain
    # "notes__author" lookup cannot be combined with a Prefetch("notes", ...) of ours.
    queryset = queryset.select_related(None).prefetch_related(None)
    queryset = queryset.prefetch_related(*(make() for make in prefetch))
    annotations = ANNOTATIONS.get(model)
    if annotations:
        queryset = queryset.annotate(**{name: make() for name, make in annotations.items()})
    return queryset.select_related(*select) if select else queryset


@dataclass
class Query:
    filters: Q
    order: list[str]
    count: int
    offset: int
    summary_count: bool
    includes: list[tuple[str, str, str]]  # (source type, param, target type)
    revincludes: list[tuple[str, str]]  # (source type, param)


def _bad(message: str, param: str) -> FhirHttpError:
    return FhirHttpError(400, message, code="invalid", expression=[param])


def _int(value: str, name: str, default: int) -> int:
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"{name} must be a whole number, got {value!r}.", name) from None
    if number < 0:
        raise _bad(f"{name} must not be negative.", name)
    return number


def date_range(text: str) -> tuple[dt.datetime, dt.datetime]:
    """The instant range [start, end) a FHIR date of any precision denotes."""
    tz = timezone.get_current_timezone()
    if "T" in text:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        return value, value + dt.timedelta(seconds=1)
    parts = [int(p) for p in text.split("-")]
    if len(parts) == 1:
        start = dt.datetime(parts[0], 1, 1, tzinfo=tz)
        end = dt.datetime(parts[0] + 1, 1, 1, tzinfo=tz)
    elif len(parts) == 2:
        start = dt.datetime(parts[0], parts[1], 1, tzinfo=tz)
        end = (start + dt.timedelta(days=32)).replace(day=1)
    else:
        start = dt.datetime(parts[0], parts[1], parts[2], tzinfo=tz)
        end = start + dt.timedelta(days=1)
    return start, end


def _is_date_field(model: type[models.Model], path: str) -> bool:
    target: Any = model
    field: Any = None
    for part in path.split("__"):
        field = target._meta.get_field(part)
        target = field.related_model
    return isinstance(field, models.DateField) and not isinstance(field, models.DateTimeField)


def _date_q(model: type[models.Model], path: str, raw: str) -> Q:
    match = DATE_VALUE.match(raw)
    if not match:
        raise _bad(f"{raw!r} is not a FHIR date (e.g. ge2026-01-01 or 2026-03).", path)
    prefix = match["prefix"] or "eq"
    try:
        start, end = date_range(match["value"])
    except ValueError:
        raise _bad(f"{raw!r} is not a valid date.", path) from None
    low: Any = start
    high: Any = end
    if _is_date_field(model, path):
        low, high = start.date(), end.date()
    return {
        "eq": Q(**{f"{path}__gte": low, f"{path}__lt": high}),
        "ap": Q(**{f"{path}__gte": low, f"{path}__lt": high}),
        "ne": ~Q(**{f"{path}__gte": low, f"{path}__lt": high}),
        "gt": Q(**{f"{path}__gte": high}),
        "sa": Q(**{f"{path}__gte": high}),
        "ge": Q(**{f"{path}__gte": low}),
        "lt": Q(**{f"{path}__lt": low}),
        "eb": Q(**{f"{path}__lt": low}),
        "le": Q(**{f"{path}__lt": high}),
    }[prefix]


def _token_q(path: str, raw: str) -> Q:
    system, bar, code = raw.rpartition("|") if "|" in raw else ("", "", raw)
    if path.startswith("="):
        fixed, _, code_path = path[1:].partition("|")
        if bar and system and system != fixed:
            return Q(pk__in=[])
        return Q(**{code_path: code}) if code else Q()
    if "|" in path:
        system_path, _, code_path = path.partition("|")
        q = Q()
        if bar and system:
            q &= Q(**{system_path: system})
        if code:
            q &= Q(**{code_path: code})
        return q
    if path.endswith("active"):
        return Q(**{path: code.lower() in ("true", "active")})
    return Q(**{path: code})


def _string_q(path: str, raw: str, modifier: str) -> Q:
    lookup = {"exact": "exact", "contains": "icontains"}.get(modifier, "istartswith")
    return Q(**{f"{path}__{lookup}": raw})


def _reference_q(param: SearchParam, path: str, raw: str, modifier: str = "") -> Q:
    if param.identifier and (
        modifier == "identifier" or "|" in raw or ("/" not in raw and not UUID.match(raw))
    ):
        return _token_q(param.identifier, raw)
    _type, _, fhir_id = raw.rpartition("/")
    if _type and param.targets and _type not in param.targets:
        raise _bad(f"{param.name} points to {', '.join(param.targets)}, not {_type}.", param.name)
    if not UUID.match(fhir_id):
        return Q(pk__in=[])
    return Q(**{path: fhir_id})


def _param_q(model: type[models.Model], param: SearchParam, raw: str, modifier: str) -> Q:
    """OR over the comma-separated values and over the param's paths."""
    q = Q()
    for value in raw.split(","):
        for path in param.paths:
            if param.type == DATE:
                q |= _date_q(model, path, value)
            elif param.type == TOKEN:
                q |= _token_q(path, value)
            elif param.type == STRING:
                q |= _string_q(path, value, modifier)
            elif param.type == REFERENCE:
                q |= _reference_q(param, path, value, modifier)
    return q


def parse(rtype: ResourceType, model: type[models.Model], params: QueryDict) -> Query:
    filters = Q()
    for key in params:
        name, _, modifier = key.partition(":")
        if name in CONTROL:
            continue
        param = rtype.params.get(name)
        if param is None:
            known = ", ".join(sorted(rtype.params))
            raise _bad(f"{rtype.name} has no search parameter '{name}'. Known: {known}.", name)
        if modifier == "missing":
            continue
        for raw in params.getlist(key):  # repeated parameters are ANDed
            filters &= _param_q(model, param, raw, modifier)
    count = min(_int(params.get("_count", ""), "_count", DEFAULT_COUNT), MAX_COUNT)
    offset = _int(params.get("_offset", ""), "_offset", 0)
    order = []
    for item in filter(None, params.get("_sort", "").split(",")):
        descending = item.startswith("-")
        param = rtype.params.get(item.lstrip("-"))
        if param is None or not param.sortable:
            sortable = ", ".join(sorted(n for n, p in rtype.params.items() if p.sortable))
            raise _bad(f"Cannot sort {rtype.name} by '{item}'. Sortable: {sortable}.", "_sort")
        path = param.paths[0]
        order.append(f"-{path}" if descending else path)
    order = order or [rtype.default_sort]
    order.append("-pk" if order[0].startswith("-") else "pk")
    includes = []
    for value in params.getlist("_include"):
        source, _, rest = value.partition(":")
        name, _, target = rest.partition(":")
        param = rtype.params.get(name)
        if source != rtype.name or param is None or param.type != REFERENCE:
            raise _bad(f"Unsupported _include {value!r}.", "_include")
        includes.append((source, name, target or param.targets[0]))
    revincludes = []
    for value in params.getlist("_revinclude"):
        source, _, name = value.partition(":")
        revincludes.append((source, name))
    summary = params.get("_summary", "")
    if summary not in ("", "count", "false"):
        raise _bad("Only _summary=count is supported.", "_summary")
    return Query(filters, order, count, offset, summary == "count", includes, revincludes)


def reference_in(param: SearchParam, fhir_ids: list[str]) -> Q:
    """Rows whose reference `param` points to any of these FHIR ids (`_revinclude`)."""
    path = param.paths[0]
    if path.endswith("__fhir_id"):
        return Q(**{f"{path}__in": fhir_ids})
    # A lookup of its own (e.g. Observation's `device_id__fhir_device`) takes the list as is.
    return Q(**{path: fhir_ids})


def page_links(request: HttpRequest, query: Query, total: int) -> list[dict[str, str]]:
    base = request.build_absolute_uri(request.path)
    params = request.GET.copy()

    def link(relation: str, offset: int) -> dict[str, str]:
        params["_offset"] = str(offset)
        params["_count"] = str(query.count)
        return {"relation": relation, "url": f"{base}?{urlencode(params, doseq=True)}"}

    links = [link("self", query.offset)]
    if query.offset + query.count < total:
        links.append(link("next", query.offset + query.count))
    if query.offset > 0:
        links.append(link("previous", max(0, query.offset - query.count)))
    return links
