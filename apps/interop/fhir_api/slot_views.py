"""FHIR Slot: free slots computed from a Schedule's availability (search and read only).

`GET /fhir/Slot?schedule=Schedule/<id>&start=ge<date>&start=le<date>[&service-type=<code>]`:
`schedule` and a `start` range of at most 31 days are required. Slot ids are deterministic
("<schedule fhir_id hex>-<type pk>-<start, Unix seconds>", `apps.scheduling.fhir.slot_id`), so
`GET /fhir/Slot/<id>` recomputes the slot and answers 404 once it is no longer free. Slots hold
no patient data: every caller with a Slot scope may search them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db.models import Q
from django.http import HttpRequest, HttpResponse, QueryDict

from apps.audit.models import Outcome
from apps.scheduling.fhir import SYS_APPOINTMENT_TYPE, FhirSlot, parse_slot_id, slot_to_fhir
from apps.scheduling.models import AppointmentType, Schedule
from apps.scheduling.services.slots import free_slots

from .auth import Caller
from .errors import FhirHttpError, fhir_response, not_found
from .resources_scheduling import SLOT
from .search import CONTROL, DATE_VALUE, DEFAULT_COUNT, MAX_COUNT, Query, date_range, page_links
from .views import audit_access, base_url, fhir_view

MAX_DAYS = 31


def _bad(message: str, param: str) -> FhirHttpError:
    return FhirHttpError(400, message, code="invalid", expression=[param])


def _schedule(params: QueryDict) -> Schedule | None:
    values = params.getlist("schedule")
    if len(values) != 1 or "," in values[0]:
        raise _bad("Give exactly one schedule (schedule=Schedule/<id>).", "schedule")
    raw = values[0].rsplit("/", 1)
    if len(raw) == 2 and raw[0].rsplit("/", 1)[-1] != "Schedule":
        raise _bad(f"schedule points to a Schedule, not {raw[0]}.", "schedule")
    try:
        fhir_id = uuid.UUID(raw[-1])
    except ValueError:
        return None
    return Schedule.objects.filter(fhir_id=fhir_id, active=True).first()


def _range(params: QueryDict) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) from `start` values with prefixes (ge, gt, le, lt, eq)."""
    low: dt.datetime | None = None
    high: dt.datetime | None = None
    for raw in params.getlist("start"):
        for value in raw.split(","):
            match = DATE_VALUE.match(value.replace(" ", "+"))
            if not match:
                raise _bad(f"{value!r} is not a FHIR date (e.g. ge2026-03-29).", "start")
            try:
                first, after = date_range(match["value"])
            except ValueError:
                raise _bad(f"{value!r} is not a valid date.", "start") from None
            prefix = match["prefix"] or "eq"
            lower = {"ge": first, "gt": after, "sa": after, "eq": first}.get(prefix)
            upper = {"le": after, "lt": first, "eb": first, "eq": after}.get(prefix)
            if lower is None and upper is None:
                raise _bad(f"Prefix {prefix!r} is not supported on Slot.start.", "start")
            if lower is not None:
                low = max(low, lower) if low else lower
            if upper is not None:
                high = min(high, upper) if high else upper
    if low is None or high is None:
        raise _bad(
            "Give a start range, e.g. start=ge2026-03-23&start=le2026-03-29 "
            f"(at most {MAX_DAYS} days).",
            "start",
        )
    if high - low > dt.timedelta(days=MAX_DAYS):
        raise _bad(f"Search at most {MAX_DAYS} days of slots at a time.", "start")
    return low, high


def _types(params: QueryDict, schedule: Schedule | None) -> list[AppointmentType]:
    codes = []
    for raw in params.getlist("service-type"):
        for value in raw.split(","):
            system, bar, code = value.rpartition("|") if "|" in value else ("", "", value)
            if bar and system and system != SYS_APPOINTMENT_TYPE:
                continue
            codes.append(code)
    if schedule is None:
        return []
    offered = schedule.appointment_types.filter(active=True).order_by("code")
    if params.getlist("service-type"):
        offered = offered.filter(code__in=codes)
    return list(offered)


def _int(params: QueryDict, name: str, default: int) -> int:
    value = params.get(name, "")
    if not value:
        return default
    if not value.isdigit():
        raise _bad(f"{name} must be a whole number, got {value!r}.", name)
    return int(value)


def find_slots(params: QueryDict) -> list[FhirSlot]:
    """The free slots a search asks for, by start (then type)."""
    for key in params:
        name = key.partition(":")[0]
        if name not in CONTROL and name not in SLOT.params:
            known = ", ".join(sorted(SLOT.params))
            raise _bad(f"Slot has no search parameter '{name}'. Known: {known}.", name)
    schedule = _schedule(params)
    start, end = _range(params)
    statuses = {s for raw in params.getlist("status") for s in raw.split(",")}
    if schedule is None or (statuses and "free" not in statuses):
        return []
    found = []
    for kind in _types(params, schedule):
        for slot in free_slots(kind, start, end, schedules=[schedule.pk]):
            found.append(FhirSlot(slot, schedule.fhir_id, kind))
    found.sort(key=lambda s: (s.slot.starts_at, s.type.code))
    return found


@fhir_view
def search(request: HttpRequest, caller: Caller) -> HttpResponse:
    if request.method not in ("GET", "POST") or (
        request.method == "POST" and not request.path.endswith("/_search")
    ):
        raise FhirHttpError(
            405,
            "Slots are computed: search and read only (book through /api/v1/appointments/).",
            code="not-supported",
        )
    caller.require("Slot", "s")
    params = request.GET if request.method == "GET" else request.POST
    slots = find_slots(params)
    count = min(_int(params, "_count", DEFAULT_COUNT), MAX_COUNT)
    offset = _int(params, "_offset", 0)
    query = Query(Q(), [], count, offset, False, [], [])
    base = base_url(request)
    page = slots[offset : offset + count]
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(slots),
        "link": page_links(request, query, len(slots)),
    }
    if params.get("_summary") != "count":
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/Slot/{slot.fhir_id}",
                "resource": slot_to_fhir(slot),
                "search": {"mode": "match"},
            }
            for slot in page
        ]
    audit_access(
        request,
        caller,
        SLOT,
        "search",
        extra={"total": len(slots), "query": params.urlencode()[:500]},
    )
    return fhir_response(bundle)


def recompute(fhir_id: str) -> FhirSlot | None:
    """The slot behind an id, if it is still free."""
    decoded = parse_slot_id(fhir_id)
    if decoded is None:
        return None
    schedule_id, type_id, starts_at = decoded
    schedule = Schedule.objects.filter(fhir_id=schedule_id, active=True).first()
    kind = AppointmentType.objects.filter(pk=type_id, active=True).first()
    if schedule is None or kind is None:
        return None
    ends_at = starts_at + dt.timedelta(minutes=kind.minutes)
    for slot in free_slots(kind, starts_at, ends_at, schedules=[schedule.pk]):
        if slot.starts_at == starts_at:
            return FhirSlot(slot, schedule.fhir_id, kind)
    return None


@fhir_view
def read(request: HttpRequest, caller: Caller, fhir_id: str) -> HttpResponse:
    if request.method != "GET":
        raise FhirHttpError(
            405, f"{request.method} is not supported on Slot/id.", code="not-supported"
        )
    caller.require("Slot", "r")
    found = recompute(fhir_id)
    if found is None:
        audit_access(request, caller, SLOT, "read", outcome=Outcome.DENIED, object_id=fhir_id)
        raise not_found("Slot", fhir_id)
    audit_access(request, caller, SLOT, "read", object_id=fhir_id)
    return fhir_response(slot_to_fhir(found))
