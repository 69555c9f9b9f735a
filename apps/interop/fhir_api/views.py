"""HTTP endpoints of the FHIR API: metadata, read, vread, search; writes and operations are
dispatched to their modules (`writes`, `operations`)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from apps.audit.models import Action, Outcome
from apps.audit.services import record as audit
from apps.records.models import Patient

from .auth import Caller, authenticate
from .errors import FHIR_JSON, FhirHttpError, error_response, fhir_response, not_found
from .registry import REFERENCE, ResourceType, get
from .scope import may_see_patient, patient_of, scoped
from .search import Query, page_links, parse, reference_in

logger = logging.getLogger(__name__)

ACCEPTABLE = ("application/fhir+json", "application/json", "application/*", "*/*", "json")


def _check_format(request: HttpRequest, *, any_accept: bool = False) -> None:
    """JSON only; `any_accept` for raw content (Binary, NDJSON) whose own type may be asked."""
    wanted = request.GET.get("_format", "")
    if wanted and wanted not in ("json", "application/json", FHIR_JSON):
        raise FhirHttpError(
            406, f"Only JSON is served (asked for {wanted!r}).", code="not-supported"
        )
    accept = request.headers.get("Accept", "")
    if accept and not any_accept and not any(kind in accept for kind in ACCEPTABLE):
        raise FhirHttpError(
            406, f"Only {FHIR_JSON} is served (Accept: {accept}).", code="not-supported"
        )


def fhir_view(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Authenticate, check the format, and turn every error into an OperationOutcome."""
    any_accept = getattr(view, "any_accept", False)

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            _check_format(request, any_accept=any_accept)
            caller = authenticate(request)
            return view(request, caller, *args, **kwargs)
        except FhirHttpError as error:
            return error_response(error)
        except Exception:
            logger.exception("FHIR request failed: %s %s", request.method, request.path)
            return error_response(
                FhirHttpError(500, "Internal error; it was logged.", code="exception")
            )

    return wrapper


def resource_type(name: str, caller: Caller) -> ResourceType:
    rtype = get(name)
    if rtype is None or caller.kind not in rtype.kinds or not rtype.allows(caller):
        raise FhirHttpError(404, f"Unknown resource type {name!r}.", code="not-supported")
    return rtype


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/fhir/").rstrip("/")


def audit_access(
    request: HttpRequest,
    caller: Caller,
    rtype: ResourceType,
    interaction: str,
    *,
    obj: Any = None,
    patient_ids: set[int] | None = None,
    outcome: str = Outcome.SUCCESS,
    object_id: str = "",
    extra: dict[str, Any] | None = None,
) -> None:
    patient_ids = patient_ids or set()
    audit(
        Action.READ if outcome == Outcome.SUCCESS else Action.DENIED,
        request=request,
        actor=caller.user,
        object_type=f"fhir.{rtype.name}",
        object_id=str(getattr(obj, "fhir_id", "") or object_id),
        patient_id=str(next(iter(patient_ids))) if len(patient_ids) == 1 else "",
        outcome=outcome,
        detail={
            "fhir": interaction,
            "caller": caller.label,
            "kind": caller.kind,
            "patients": len(patient_ids),
            **(extra or {}),
        },
    )


def find(caller: Caller, rtype: ResourceType, fhir_id: str) -> Any | None:
    """The row behind `rtype/fhir_id` if the caller may see it."""
    try:
        uuid.UUID(fhir_id)
    except ValueError:
        return None
    for model in rtype.models:
        patient_id = None
        if rtype.patient_path is not None:
            # Whose row it is first (unique index), then the right to that one patient.
            column = f"{rtype.patient_path}_id" if rtype.patient_path else "pk"
            owner = rtype.queryset(model).filter(fhir_id=fhir_id).values_list(column, flat=True)
            owners = list(owner.order_by()[:1])
            if not owners:
                continue
            patient_id = owners[0]
        # fhir_id is unique: no ordering to compile or sort.
        scope = scoped(caller, rtype, model, patient_id=patient_id)
        found = list(scope.filter(fhir_id=fhir_id).order_by()[:1])
        if found:
            return found[0]
    return None


def version_headers(obj: Any) -> dict[str, str]:
    return {
        "ETag": f'W/"{obj.version}"',
        "Last-Modified": obj.updated_at.strftime("%a, %d %b %Y %H:%M:%S GMT"),
    }


def read_response(
    request: HttpRequest, caller: Caller, rtype: ResourceType, obj: Any
) -> HttpResponse:
    resource = rtype.to_fhir(obj)
    headers = version_headers(obj)
    patient = patient_of(rtype, obj)
    audit_access(
        request, caller, rtype, "read", obj=obj, patient_ids={patient.pk} if patient else None
    )
    return fhir_response(resource, headers=headers)


@fhir_view
def instance(request: HttpRequest, caller: Caller, type_name: str, fhir_id: str) -> HttpResponse:
    rtype = resource_type(type_name, caller)
    if request.method == "GET":
        caller.require(rtype.name, "r")
        obj = find(caller, rtype, fhir_id)
        if obj is None:
            audit_access(request, caller, rtype, "read", outcome=Outcome.DENIED, object_id=fhir_id)
            raise not_found(rtype.name, fhir_id)
        return read_response(request, caller, rtype, obj)
    if request.method == "PUT":
        from .writes import update

        return update(request, caller, rtype, fhir_id)
    raise FhirHttpError(
        405, f"{request.method} is not supported on {rtype.name}/id.", code="not-supported"
    )


@fhir_view
def vread(
    request: HttpRequest, caller: Caller, type_name: str, fhir_id: str, version: str
) -> HttpResponse:
    """Only the current version is kept: older versions answer 404 (410 would claim deletion)."""
    rtype = resource_type(type_name, caller)
    caller.require(rtype.name, "r")
    obj = find(caller, rtype, fhir_id)
    if obj is None or str(obj.version) != version:
        audit_access(request, caller, rtype, "vread", outcome=Outcome.DENIED, object_id=fhir_id)
        raise FhirHttpError(
            404,
            f"{rtype.name}/{fhir_id}/_history/{version} is not available "
            "(only the current version is kept).",
            code="not-found",
        )
    return read_response(request, caller, rtype, obj)


@fhir_view
def type_level(request: HttpRequest, caller: Caller, type_name: str) -> HttpResponse:
    rtype = resource_type(type_name, caller)
    if request.method == "GET":
        return search(request, caller, rtype, request.GET)
    if request.method == "POST":
        if request.path.endswith("/_search"):
            return search(request, caller, rtype, request.POST)
        from .writes import create

        return create(request, caller, rtype)
    if request.method == "PUT":
        from .writes import conditional_update

        return conditional_update(request, caller, rtype)
    raise FhirHttpError(
        405, f"{request.method} is not supported on {rtype.name}.", code="not-supported"
    )


def _pinned_patient(rtype: ResourceType, params: Any) -> int | None:
    """The patient a search is limited to by a single `patient`/`subject` value, if any."""
    if not rtype.patient_path:
        return None
    values = [v for name in ("patient", "subject") for v in params.getlist(name)]
    if len(values) != 1 or "," in values[0]:
        return None
    fhir_id = values[0].removeprefix("Patient/")
    try:
        uuid.UUID(fhir_id)
    except ValueError:
        return None
    found = list(Patient.objects.filter(fhir_id=fhir_id).values_list("pk", flat=True)[:1])
    # An unknown patient matches nothing: pin to an id no row has.
    return found[0] if found else 0


def _run(
    caller: Caller, rtype: ResourceType, query: Query, patient_id: int | None = None
) -> tuple[int, list[Any]]:
    """Total and the page's rows, across the type's models (merged by the sort key)."""
    if patient_id is not None and not may_see_patient(caller, patient_id):
        return 0, []
    querysets = [
        scoped(caller, rtype, m, patient_id=patient_id, checked=True)
        .filter(query.filters)
        .order_by(*query.order)
        for m in rtype.models
    ]
    if query.summary_count:
        return sum(qs.count() for qs in querysets), []
    if len(querysets) == 1:
        rows = list(querysets[0][query.offset : query.offset + query.count])
        return _total(querysets[0], query, rows), rows
    merged: list[Any] = []
    for qs in querysets:
        merged.extend(qs[: query.offset + query.count])
    key = query.order[0]
    field = key.lstrip("-").split("__")[0]
    merged.sort(key=lambda r: getattr(r, field), reverse=key.startswith("-"))
    return sum(qs.count() for qs in querysets), merged[query.offset : query.offset + query.count]


def _total(queryset: Any, query: Query, rows: list[Any]) -> int:
    """The match count; a page that is not full already tells it (saves a COUNT)."""
    short = len(rows) < query.count and (rows or query.offset == 0)
    if query.count and short:
        return query.offset + len(rows)
    return int(queryset.count())


def _included(
    caller: Caller, rtype: ResourceType, rows: list[Any], query: Query
) -> list[tuple[str, Any]]:
    extra: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for _source, param_name, target in query.includes:
        target_type = get(target)
        if target_type is None:
            continue
        path = rtype.params[param_name].paths[0]  # e.g. "patient__fhir_id"
        ids = set()
        for row in rows:
            value: Any = row
            for part in path.split("__"):
                value = getattr(value, part, None) if value is not None else None
            if value:
                ids.add(str(value))
        for model in target_type.models:
            for obj in scoped(caller, target_type, model).filter(fhir_id__in=ids):
                if str(obj.fhir_id) not in seen:
                    seen.add(str(obj.fhir_id))
                    extra.append((target_type.name, obj))
    for source, param_name in query.revincludes:
        source_type = get(source)
        param = source_type.params.get(param_name) if source_type is not None else None
        if (
            source_type is None
            or param is None
            or param.type != REFERENCE
            or not caller.can(source, "s")
        ):
            raise FhirHttpError(
                400, f"Unsupported _revinclude {source}:{param_name}.", expression=["_revinclude"]
            )
        pointing = reference_in(param, [str(r.fhir_id) for r in rows])
        for model in source_type.models:
            for obj in scoped(caller, source_type, model).filter(pointing)[:1000]:
                extra.append((source_type.name, obj))
    return extra


def search(request: HttpRequest, caller: Caller, rtype: ResourceType, params: Any) -> HttpResponse:
    caller.require(rtype.name, "s")
    query = parse(rtype, rtype.models[0], params)
    total, rows = _run(caller, rtype, query, _pinned_patient(rtype, params))
    rtype.prepare_rows(rows)
    base = base_url(request)
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": page_links(request, query, total),
    }
    entries = [
        {
            "fullUrl": f"{base}/{rtype.name}/{row.fhir_id}",
            "resource": rtype.to_fhir(row),
            "search": {"mode": "match"},
        }
        for row in rows
    ]
    for type_name, obj in _included(caller, rtype, rows, query) if rows else []:
        target = get(type_name)
        assert target is not None  # noqa: S101 - _included only returns registered types
        entries.append(
            {
                "fullUrl": f"{base}/{type_name}/{obj.fhir_id}",
                "resource": target.to_fhir(obj),
                "search": {"mode": "include"},
            }
        )
    if not query.summary_count:
        bundle["entry"] = entries
    patients = {p.pk for p in (patient_of(rtype, row) for row in rows) if p is not None}
    audit_access(
        request,
        caller,
        rtype,
        "search",
        patient_ids=patients,
        extra={"total": total, "query": params.urlencode()[:500]},
    )
    return fhir_response(bundle)


@fhir_view
def root(request: HttpRequest, caller: Caller) -> HttpResponse:
    """`POST /fhir/`: a transaction or batch Bundle."""
    if request.method != "POST":
        raise FhirHttpError(
            405,
            "Only POST (a transaction or batch Bundle) is supported on the base.",
            code="not-supported",
        )
    from .transaction import process_bundle

    return process_bundle(request, caller)


@fhir_view
def export(request: HttpRequest, caller: Caller, level: str, fhir_id: str = "") -> HttpResponse:
    """`$export` kick-off at system, Patient or Group level."""
    from .bulk import kickoff

    return kickoff(request, caller, level, fhir_id)


@fhir_view
def export_status(request: HttpRequest, caller: Caller, job_id: str) -> HttpResponse:
    """Poll (GET) or cancel (DELETE) an export job."""
    from .bulk import status

    return status(request, caller, job_id)


def raw_content(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Mark a view serving raw content: any Accept header is fine (applied under fhir_view)."""
    view.any_accept = True  # type: ignore[attr-defined]
    return view


@fhir_view
@raw_content
def export_file(request: HttpRequest, caller: Caller, job_id: str, name: str) -> HttpResponseBase:
    """Download one NDJSON file of a finished export."""
    from .bulk import download

    return download(request, caller, job_id, name)


@fhir_view
def everything(request: HttpRequest, caller: Caller, fhir_id: str) -> HttpResponse:
    """`Patient/<id>/$everything`."""
    from .operations import patient_everything

    return patient_everything(request, caller, fhir_id)


@fhir_view
@raw_content
def binary(request: HttpRequest, caller: Caller, fhir_id: str) -> HttpResponseBase:
    """`Binary/<id>`: a document's content, through the permission check."""
    from .operations import binary_content

    return binary_content(request, caller, fhir_id)


def capability(request: HttpRequest) -> HttpResponse:
    """`GET /fhir/metadata`: public, generated from the registry."""
    try:
        _check_format(request)
    except FhirHttpError as error:
        return error_response(error)
    from .capability import capability_statement

    return fhir_response(capability_statement(base_url(request)))


def smart_configuration(request: HttpRequest) -> HttpResponse:
    """SMART discovery document: where backends get tokens and what they may ask for."""
    from .capability import smart_configuration as document

    response = HttpResponse(
        json.dumps(document(base_url(request))), content_type="application/json"
    )
    response["Cache-Control"] = "public, max-age=3600"
    return response
