"""`POST /fhir/` with a transaction or batch Bundle.

Transaction: all or nothing, in one database transaction. Writes run before reads; among
writes, an entry runs after the entries whose `fullUrl` it references (then POST before PUT,
then Bundle order), so `urn:uuid:` names resolve whatever the order the client used. New
resources get their ids before anything runs, so every reference to them is rewritten to
"<Type>/<id>"; conditional entries (`request.ifNoneExist`, `PUT <Type>?<search>`) are named
when they have run. The first failure undoes everything and answers an OperationOutcome naming
the entry (`Bundle.entry[i]`) with that entry's status.

Batch: every entry on its own (a savepoint each); `urn:uuid:` names are not resolved between
entries (FHIR forbids it); a failure is reported in that entry's `response.outcome` and the
Bundle answers 200. DELETE, PATCH and HEAD entries are not supported (405 for that entry).
"""

from __future__ import annotations

import heapq
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict

from apps.audit.models import Outcome

from .auth import Caller
from .errors import FhirHttpError, fhir_response, not_found
from .registry import ResourceType
from .savers import Denied, audit_denied, parse_body, references
from .scope import patient_of, scoped
from .search import parse
from .writes import (
    Written,
    do_conditional_update,
    do_create,
    do_update,
    prefer_return,
    stored_resource,
    write_headers,
)

WRITE_RANK = {"POST": 0, "PUT": 1}
UNSUPPORTED = ("DELETE", "PATCH", "HEAD")
MAX_ENTRIES = 1000


@dataclass
class Entry:
    index: int
    method: str
    url: str
    resource: dict[str, Any] | None
    full_url: str
    if_none_exist: str = ""
    if_match: str = ""
    type_name: str = ""
    fhir_id: str = ""  # PUT Type/<id>, or the id pre-assigned to a POST
    criteria: str = ""  # PUT Type?<criteria>, GET Type?<params>
    depends: set[int] = field(default_factory=set)

    @property
    def label(self) -> str:
        return f"Bundle.entry[{self.index}] ({self.method} {self.url})"


def _bad(message: str, path: str = "Bundle") -> FhirHttpError:
    return FhirHttpError(400, message, expression=[path])


def _entries(data: dict[str, Any], base: str) -> list[Entry]:
    raw = data.get("entry") or []
    if not isinstance(raw, list):
        raise _bad("Bundle.entry must be a list.", "Bundle.entry")
    if len(raw) > MAX_ENTRIES:
        raise _bad(f"A Bundle may hold at most {MAX_ENTRIES} entries; split it.", "Bundle.entry")
    entries = []
    for index, item in enumerate(raw):
        path = f"Bundle.entry[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
            raise _bad(f"{path}.request is required (method and url).", f"{path}.request")
        request = item["request"]
        method = str(request.get("method", "")).upper()
        url = str(request.get("url", ""))
        resource = item.get("resource")
        if resource is not None and not isinstance(resource, dict):
            raise _bad(f"{path}.resource must be a resource (a JSON object).", f"{path}.resource")
        entry = Entry(
            index,
            method,
            url,
            resource,
            str(item.get("fullUrl") or ""),
            if_none_exist=str(request.get("ifNoneExist") or ""),
            if_match=str(request.get("ifMatch") or ""),
        )
        relative = url[len(base) + 1 :] if url.startswith(base + "/") else url.lstrip("/")
        path_part, _, entry.criteria = relative.partition("?")
        parts = path_part.split("/")
        entry.type_name = parts[0]
        entry.fhir_id = parts[1] if len(parts) > 1 else ""
        entries.append(entry)
    return entries


def _check_entry(entry: Entry, caller: Caller) -> ResourceType:
    """The entry's resource type; an unsupported entry raises its own error."""
    from .views import resource_type

    if entry.method in UNSUPPORTED:
        raise FhirHttpError(
            405,
            f"{entry.method} entries are not supported in Bundles here (only POST, PUT, GET).",
            code="not-supported",
        )
    if entry.method not in ("POST", "PUT", "GET"):
        raise FhirHttpError(400, f"Unknown request.method {entry.method!r}.")
    if not entry.type_name:
        raise FhirHttpError(400, "request.url must name a resource type, e.g. Patient.")
    rtype = resource_type(entry.type_name, caller)
    if entry.method in WRITE_RANK and entry.resource is None:
        raise FhirHttpError(400, f"A {entry.method} entry needs its resource.", code="required")
    if entry.method == "POST" and (entry.fhir_id or entry.criteria):
        raise FhirHttpError(400, f"POST goes to the type ({entry.type_name}), not {entry.url}.")
    if entry.method == "PUT" and not entry.fhir_id and not entry.criteria:
        raise FhirHttpError(
            400, "PUT needs Type/<id> or Type?<search> (conditional update) as its url."
        )
    return rtype


# ---------------------------------------------------------------------------------------------
# Running one entry


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def _write(
    request: HttpRequest, caller: Caller, rtype: ResourceType, entry: Entry, base: str
) -> Written:
    assert entry.resource is not None  # noqa: S101 - checked by _check_entry
    if entry.method == "POST":
        return do_create(
            request,
            caller,
            rtype,
            entry.resource,
            if_none_exist=entry.if_none_exist,
            base=base,
            fhir_id=entry.fhir_id or None,
        )
    if entry.fhir_id:
        return do_update(
            request,
            caller,
            rtype,
            entry.fhir_id,
            entry.resource,
            if_match=entry.if_match,
            base=base,
        )
    return do_conditional_update(
        request,
        caller,
        rtype,
        QueryDict(entry.criteria),
        entry.resource,
        if_match=entry.if_match,
        base=base,
    )


def _written_entry(
    request: HttpRequest, caller: Caller, written: Written, base: str, prefer: str
) -> dict[str, Any]:
    obj, resource = stored_resource(written)
    if written.matched:  # a conditional create shows an existing row: audited as a read
        from .views import audit_access

        patient = patient_of(written.rtype, obj)
        audit_access(
            request,
            caller,
            written.rtype,
            "conditional-create-match",
            obj=obj,
            patient_ids={patient.pk} if patient else None,
        )
        if not caller.can(written.rtype.name, "r"):
            prefer = "minimal"
    headers = write_headers(base, written, obj)
    result: dict[str, Any] = {
        "fullUrl": f"{base}/{written.rtype.name}/{obj.fhir_id}",
        "response": {
            "status": _status_line(written.status),
            "location": headers["Location"],
            "etag": headers["ETag"],
            "lastModified": obj.updated_at.isoformat(),
        },
    }
    if prefer != "minimal":
        result["resource"] = resource
    return result


def _read(
    request: HttpRequest, caller: Caller, rtype: ResourceType, entry: Entry, base: str
) -> dict[str, Any]:
    """A GET entry: a read (Type/id) or a first page of search results (Type?params)."""
    from .views import audit_access, find

    if entry.fhir_id:
        caller.require(rtype.name, "r")
        obj = find(caller, rtype, entry.fhir_id)
        if obj is None:
            audit_access(
                request, caller, rtype, "read", outcome=Outcome.DENIED, object_id=entry.fhir_id
            )
            raise not_found(rtype.name, entry.fhir_id)
        patient = patient_of(rtype, obj)
        audit_access(
            request, caller, rtype, "read", obj=obj, patient_ids={patient.pk} if patient else None
        )
        return {
            "fullUrl": f"{base}/{rtype.name}/{obj.fhir_id}",
            "resource": rtype.to_fhir(obj),
            "response": {"status": "200 OK", "etag": f'W/"{obj.version}"'},
        }
    caller.require(rtype.name, "s")
    params = QueryDict(entry.criteria)
    query = parse(rtype, rtype.models[0], params)
    rows: list[Any] = []
    total = 0
    for model in rtype.models:
        queryset = scoped(caller, rtype, model).filter(query.filters).order_by(*query.order)
        total += queryset.count()
        if not query.summary_count:
            rows.extend(queryset[query.offset : query.offset + query.count])
    rows = rows[: query.count]
    rtype.prepare_rows(rows)
    patients = {p.pk for p in (patient_of(rtype, row) for row in rows) if p is not None}
    audit_access(
        request,
        caller,
        rtype,
        "search",
        patient_ids=patients,
        extra={"total": total, "query": entry.criteria[:500], "bundle": True},
    )
    searchset: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total}
    if not query.summary_count:
        searchset["entry"] = [
            {
                "fullUrl": f"{base}/{rtype.name}/{row.fhir_id}",
                "resource": rtype.to_fhir(row),
                "search": {"mode": "match"},
            }
            for row in rows
        ]
    return {"resource": searchset, "response": {"status": "200 OK"}}


# ---------------------------------------------------------------------------------------------
# Transaction


def _resolve(value: Any, names: dict[str, str]) -> Any:
    """`value` with every reference to a Bundle-local name replaced by "<Type>/<id>"."""
    if isinstance(value, dict):
        return {
            key: names.get(item, item)
            if key == "reference" and isinstance(item, str)
            else _resolve(item, names)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_resolve(item, names) for item in value]
    return value


def _order(writes: list[Entry]) -> list[Entry]:
    """Writes after the entries they reference; otherwise POST, then PUT, in Bundle order."""
    by_url = {entry.full_url: entry for entry in writes if entry.full_url}
    for entry in writes:
        for _path, reference in references(entry.resource, ""):
            target = by_url.get(reference)
            if target is not None and target is not entry:
                entry.depends.add(target.index)
    waiting = {entry.index: set(entry.depends) for entry in writes}
    by_index = {entry.index: entry for entry in writes}
    ready = [(WRITE_RANK[e.method], e.index) for e in writes if not waiting[e.index]]
    heapq.heapify(ready)
    ordered: list[Entry] = []
    while ready:
        _rank, index = heapq.heappop(ready)
        ordered.append(by_index[index])
        for other, needs in waiting.items():
            if index in needs:
                needs.discard(index)
                if not needs:
                    heapq.heappush(ready, (WRITE_RANK[by_index[other].method], other))
    if len(ordered) < len(writes):
        stuck = sorted(i for i, needs in waiting.items() if needs)
        raise _bad(
            "Entries reference each other in a cycle (entries "
            f"{', '.join(str(i) for i in stuck)}): a transaction cannot create them.",
            "Bundle.entry",
        )
    return ordered


def _names(writes: list[Entry]) -> dict[str, str]:
    """Bundle-local names known before anything runs: new POSTs get their ids now."""
    names: dict[str, str] = {}
    for entry in writes:
        if entry.method == "POST" and not entry.if_none_exist:
            entry.fhir_id = str(uuid.uuid4())
        if entry.full_url and entry.fhir_id:
            names[entry.full_url] = f"{entry.type_name}/{entry.fhir_id}"
    return names


def _in_entry(entry: Entry, error: FhirHttpError) -> FhirHttpError:
    """The error, named by its entry, with FHIRPaths rooted in the Bundle."""
    root = f"Bundle.entry[{entry.index}]"
    expression = [
        f"{root}.resource{path[len(entry.type_name) :]}"
        if path.startswith(entry.type_name)
        else root
        for path in error.expression
    ] or [root]
    return FhirHttpError(
        error.status,
        f"{entry.label}: {error.diagnostics} Nothing in the transaction was committed.",
        code=error.code,
        expression=expression,
        headers=error.headers,
    )


def _transaction(
    request: HttpRequest, caller: Caller, entries: list[Entry], base: str, prefer: str
) -> HttpResponse:
    types: dict[int, ResourceType] = {}
    for entry in entries:
        try:
            types[entry.index] = _check_entry(entry, caller)
        except FhirHttpError as error:
            raise _in_entry(entry, error) from None
    writes = [entry for entry in entries if entry.method in WRITE_RANK]
    names = _names(writes)
    ordered = _order(writes)
    results: dict[int, dict[str, Any]] = {}
    current: Entry | None = None
    try:
        with transaction.atomic():
            for current in ordered:
                resource = _resolve(current.resource, names)
                current.resource = resource
                written = _write(request, caller, types[current.index], current, base)
                if current.full_url:
                    names[current.full_url] = f"{written.rtype.name}/{written.obj.fhir_id}"
                results[current.index] = _written_entry(request, caller, written, base, prefer)
            for current in (entry for entry in entries if entry.method == "GET"):
                results[current.index] = _read(request, caller, types[current.index], current, base)
    except Denied as denied:
        assert current is not None  # noqa: S101 - a Denied comes from an entry
        audit_denied(request, caller, current.type_name, denied, "transaction")
        raise _in_entry(current, denied) from None
    except FhirHttpError as error:
        if current is None:
            raise
        raise _in_entry(current, error) from None
    return fhir_response(
        {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [results[entry.index] for entry in entries],
        }
    )


# ---------------------------------------------------------------------------------------------
# Batch


def _batch(
    request: HttpRequest, caller: Caller, entries: list[Entry], base: str, prefer: str
) -> HttpResponse:
    results = []
    for entry in entries:
        try:
            with transaction.atomic():
                rtype = _check_entry(entry, caller)
                if entry.method == "GET":
                    result = _read(request, caller, rtype, entry, base)
                else:
                    written = _write(request, caller, rtype, entry, base)
                    result = _written_entry(request, caller, written, base, prefer)
        except FhirHttpError as error:
            if isinstance(error, Denied):
                audit_denied(request, caller, entry.type_name, error, "batch")
            result = {
                "response": {
                    "status": _status_line(error.status),
                    "outcome": _in_batch(entry, error),
                }
            }
        results.append(result)
    return fhir_response({"resourceType": "Bundle", "type": "batch-response", "entry": results})


def _in_batch(entry: Entry, error: FhirHttpError) -> dict[str, Any]:
    outcome = error.outcome()
    outcome["issue"][0]["diagnostics"] = f"{entry.label}: {error.diagnostics}"
    return outcome


def process_bundle(request: HttpRequest, caller: Caller) -> HttpResponse:
    from .views import base_url

    data = parse_body(request)
    if data.get("resourceType") != "Bundle":
        raise _bad(
            f"POST to the base takes a Bundle, not a {data.get('resourceType')!r}.",
            "Bundle.resourceType",
        )
    kind = data.get("type")
    if kind not in ("transaction", "batch"):
        raise _bad(
            f"Bundle.type must be transaction or batch to be processed, not {kind!r}.",
            "Bundle.type",
        )
    base = base_url(request)
    entries = _entries(data, base)
    prefer = prefer_return(request)
    if kind == "transaction":
        return _transaction(request, caller, entries, base, prefer)
    return _batch(request, caller, entries, base, prefer)
