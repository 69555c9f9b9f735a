"""FHIR create, update and their conditional forms, for the types registered `writable`.

- `POST /fhir/<Type>`: create (the body's id is ignored). With `If-None-Exist: <search>`:
  no match → create (201); one match → 200 with that resource, nothing written; more → 412.
- `PUT /fhir/<Type>/<id>`: update; the body's id must be the URL's (400). `If-Match:
  W/"<version>"` must name the current version (412). An id nobody holds creates the resource
  with that id (201, ids being UUIDs); an id that exists but that the caller may not see
  answers 404 and nothing is written.
- `PUT /fhir/<Type>?<search>`: conditional update: no match → create (201), one → update it,
  more → 412.

Matching uses the search machinery on the caller's rows only, so nobody learns of rows they
may not see. Responses carry Location (`<base>/<Type>/<id>/_history/<version>`), ETag and
Last-Modified; the body follows `Prefer: return=minimal | representation | OperationOutcome`.
What may be written, and by whom, is decided in `savers` (permissions, validation) and
`persist` (per type; notably a MedicationRequest written here is always a draft prescription
that a physician signs in the practitioner portal, never an active signed one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict

from .auth import Caller
from .errors import FhirHttpError, fhir_response, operation_outcome
from .registry import ResourceType
from .savers import (
    Denied,
    audit_denied,
    check_version,
    is_uuid,
    locate,
    matches,
    parse_body,
    save_resource,
)
from .scope import patient_of


@dataclass(frozen=True)
class Written:
    """The outcome of one write: the row and the HTTP status (201 created, 200 otherwise)."""

    rtype: ResourceType
    obj: Any
    status: int
    matched: bool = False  # a conditional create that found its resource: nothing written


# ---------------------------------------------------------------------------------------------
# The operations, without HTTP (Bundles run them too); call inside transaction.atomic()


def do_create(
    request: HttpRequest,
    caller: Caller,
    rtype: ResourceType,
    data: dict[str, Any],
    *,
    if_none_exist: str = "",
    base: str,
    fhir_id: str | None = None,
) -> Written:
    """Create `data`; `fhir_id` pre-assigns the id (Bundles resolving `urn:uuid:` names)."""
    if if_none_exist:
        caller.require(rtype.name, "c")
        found = matches(caller, rtype, QueryDict(if_none_exist), "conditional create")
        if len(found) > 1:
            raise _multiple(rtype, if_none_exist)
        if found:
            return Written(rtype, found[0], 200, matched=True)
    saved = save_resource(request, caller, rtype, data, fhir_id=fhir_id, base=base)
    return Written(rtype, saved.obj, 201)


def do_update(
    request: HttpRequest,
    caller: Caller,
    rtype: ResourceType,
    fhir_id: str,
    data: dict[str, Any],
    *,
    if_match: str = "",
    base: str,
) -> Written:
    body_id = data.get("id")
    if body_id is None:
        raise FhirHttpError(
            400,
            f"An update needs the resource's id in the body ({rtype.name}.id = {fhir_id}).",
            code="required",
            expression=[f"{rtype.name}.id"],
        )
    if str(body_id) != fhir_id:
        raise FhirHttpError(
            400,
            f"The body's id {body_id!r} is not the id in the URL ({fhir_id}).",
            expression=[f"{rtype.name}.id"],
        )
    caller.require(rtype.name, "u")
    target, exists = locate(caller, rtype, fhir_id)
    if target is None and exists:
        raise Denied(rtype.name, fhir_id)
    if target is None:
        if not is_uuid(fhir_id):
            raise FhirHttpError(
                400,
                f"{fhir_id!r} cannot be a new {rtype.name} id: ids here are UUIDs.",
                expression=[f"{rtype.name}.id"],
            )
        if if_match:
            raise FhirHttpError(
                412,
                f"{rtype.name}/{fhir_id} does not exist, so If-Match cannot name its version.",
                code="conflict",
            )
        saved = save_resource(request, caller, rtype, data, fhir_id=fhir_id, base=base)
        return Written(rtype, saved.obj, 201)
    check_version(target, if_match)
    saved = save_resource(request, caller, rtype, data, target=target, base=base)
    return Written(rtype, saved.obj, 200)


def do_conditional_update(
    request: HttpRequest,
    caller: Caller,
    rtype: ResourceType,
    criteria: QueryDict,
    data: dict[str, Any],
    *,
    if_match: str = "",
    base: str,
) -> Written:
    if not (caller.can(rtype.name, "c") or caller.can(rtype.name, "u")):
        caller.require(rtype.name, "u")
    found = matches(caller, rtype, criteria, "conditional update")
    if len(found) > 1:
        raise _multiple(rtype, criteria.urlencode())
    body_id = data.get("id")
    if found:
        target = found[0]
        if body_id is not None and str(body_id) != str(target.fhir_id):
            raise FhirHttpError(
                400,
                f"The body's id {body_id!r} is not the id of the matching resource "
                f"({rtype.name}/{target.fhir_id}).",
                expression=[f"{rtype.name}.id"],
            )
        return do_update(
            request,
            caller,
            rtype,
            str(target.fhir_id),
            {**data, "id": str(target.fhir_id)},
            if_match=if_match,
            base=base,
        )
    if body_id is not None:
        existing, exists = locate(caller, rtype, str(body_id))
        if existing is None and exists:
            raise Denied(rtype.name, str(body_id))
        if existing is not None:
            raise FhirHttpError(
                409,
                f"{rtype.name}/{body_id} exists but does not match the criteria "
                f"({criteria.urlencode()}): update it by id, or leave the id out.",
                code="conflict",
            )
        return do_update(request, caller, rtype, str(body_id), data, if_match=if_match, base=base)
    saved = save_resource(request, caller, rtype, data, base=base)
    return Written(rtype, saved.obj, 201)


def _multiple(rtype: ResourceType, criteria: str) -> FhirHttpError:
    return FhirHttpError(
        412,
        f"The criteria {criteria!r} match more than one {rtype.name}: make them more "
        "selective (e.g. identifier=<system>|<value>).",
        code="multiple-matches",
    )


# ---------------------------------------------------------------------------------------------
# HTTP


def _base(request: HttpRequest) -> str:
    from .views import base_url

    return base_url(request)


def _run(request: HttpRequest, caller: Caller, rtype: ResourceType, operation: Any) -> Written:
    """Run one write in a transaction; a refusal (404) is audited after the rollback."""
    try:
        with transaction.atomic():
            written: Written = operation()
    except Denied as denied:
        interaction = "update" if request.method == "PUT" else "create"
        audit_denied(request, caller, rtype.name, denied, interaction)
        raise
    return written


def create(request: HttpRequest, caller: Caller, rtype: ResourceType) -> HttpResponse:
    data = parse_body(request)
    base = _base(request)
    criteria = request.headers.get("If-None-Exist", "")
    written = _run(
        request,
        caller,
        rtype,
        lambda: do_create(request, caller, rtype, data, if_none_exist=criteria, base=base),
    )
    return write_response(request, caller, written)


def update(request: HttpRequest, caller: Caller, rtype: ResourceType, fhir_id: str) -> HttpResponse:
    data = parse_body(request)
    base = _base(request)
    if_match = request.headers.get("If-Match", "")
    written = _run(
        request,
        caller,
        rtype,
        lambda: do_update(request, caller, rtype, fhir_id, data, if_match=if_match, base=base),
    )
    return write_response(request, caller, written)


def conditional_update(request: HttpRequest, caller: Caller, rtype: ResourceType) -> HttpResponse:
    data = parse_body(request)
    base = _base(request)
    criteria = request.GET.copy()
    criteria.pop("_format", None)
    if_match = request.headers.get("If-Match", "")
    written = _run(
        request,
        caller,
        rtype,
        lambda: do_conditional_update(
            request, caller, rtype, criteria, data, if_match=if_match, base=base
        ),
    )
    return write_response(request, caller, written)


def prefer_return(request: HttpRequest) -> str:
    """`Prefer: return=…` (minimal, representation or OperationOutcome)."""
    for part in request.headers.get("Prefer", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() == "return":
            return value.strip().strip('"')
    return "representation"


def stored_resource(written: Written) -> tuple[Any, dict[str, Any]]:
    """The row as stored now (reloaded with the type's joins) and its FHIR JSON."""
    obj = written.rtype.queryset(type(written.obj)).get(pk=written.obj.pk)
    return obj, written.rtype.to_fhir(obj)


def location(base: str, rtype: ResourceType, obj: Any) -> str:
    return f"{base}/{rtype.name}/{obj.fhir_id}/_history/{obj.version}"


def write_headers(base: str, written: Written, obj: Any) -> dict[str, str]:
    return {
        "Location": location(base, written.rtype, obj),
        "ETag": f'W/"{obj.version}"',
        "Last-Modified": obj.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
    }


def write_response(request: HttpRequest, caller: Caller, written: Written) -> HttpResponse:
    obj, resource = stored_resource(written)
    wanted = prefer_return(request)
    if written.matched:
        # The caller is shown an existing row: a read, audited as one (and only with `r`).
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
            wanted = "minimal"
    headers = write_headers(_base(request), written, obj)
    if wanted == "minimal":
        return fhir_response(None, written.status, headers)
    if wanted == "OperationOutcome":
        verb = "Created" if written.status == 201 else "Stored"
        message = f"{verb} {written.rtype.name}/{obj.fhir_id} version {obj.version}."
        outcome = operation_outcome(message, code="informational", severity="information")
        return fhir_response(outcome, written.status, headers)
    return fhir_response(resource, written.status, headers)
