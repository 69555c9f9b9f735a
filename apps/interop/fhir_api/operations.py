"""`Patient/<id>/$everything` and `Binary/<id>` (a document's content), both permission-checked.

$everything gives the patient and every resource of their compartment that the caller may see
(the same row rules as search, and only the types the token's scopes let it read): the patient,
then the other types by name, paged with `_count`/`_offset` like search.
A Binary's id is its DocumentReference's id.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from typing import Any
from urllib.parse import urlencode

from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse

from apps.audit.models import Outcome
from apps.core.crypto import DecryptionError
from apps.records.models import ClinicalNote, DocumentReference, Patient
from apps.records.services.documents import open_document

from .auth import Caller
from .errors import FHIR_JSON, FhirHttpError, fhir_response, not_found
from .registry import ResourceType, all_types, get
from .scope import scoped
from .views import audit_access, base_url, find

logger = logging.getLogger(__name__)

DEFAULT_COUNT = 50
MAX_COUNT = 500
EVERYTHING_PARAMS = {"_since", "_type", "_count", "_offset", "_format"}


def _registered(name: str) -> ResourceType:
    rtype = get(name)
    if rtype is None:  # the record's types are registered with the API package
        raise FhirHttpError(500, f"{name} is not served by this server.", code="exception")
    return rtype


def _whole_number(request: HttpRequest, name: str, default: int) -> int:
    raw = request.GET.get(name, "")
    if not raw:
        return default
    if not raw.isdigit():
        raise FhirHttpError(400, f"{name} must be a whole number, got {raw!r}.", expression=[name])
    return int(raw)


def parse_since(raw: str) -> dt.datetime | None:
    """`_since`: a FHIR instant with its time zone (e.g. 2026-03-01T08:00:00Z)."""
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or "T" not in raw or value.tzinfo is None:
        raise FhirHttpError(
            400,
            f"_since must be an instant with a time zone, e.g. 2026-03-01T08:00:00Z (got {raw!r}).",
            expression=["_since"],
        )
    return value


def compartment_types(caller: Caller) -> list[ResourceType]:
    """The types of a patient's compartment the caller's token may read, by name."""
    return [
        rtype
        for rtype in all_types()
        if rtype.patient_path and caller.kind in rtype.kinds and caller.can(rtype.name, "r")
    ]


def _wanted_types(request: HttpRequest, caller: Caller) -> list[ResourceType]:
    # The patient first (the caller's Patient read scope was checked), then the types by name.
    available = {"Patient": _registered("Patient")}
    available.update((rtype.name, rtype) for rtype in compartment_types(caller))
    raw = request.GET.get("_type", "")
    if not raw:
        return list(available.values())
    wanted = []
    for name in (part.strip() for part in raw.split(",")):
        if name not in available:
            known = ", ".join(sorted(available))
            raise FhirHttpError(
                400,
                f"_type {name!r} is not a type of the patient's compartment that this token "
                f"may read. Possible: {known}.",
                expression=["_type"],
            )
        if available[name] not in wanted:
            wanted.append(available[name])
    return wanted


def _querysets(
    caller: Caller, types: list[ResourceType], patient: Patient, since: dt.datetime | None
) -> list[tuple[ResourceType, QuerySet[Any]]]:
    found = []
    for rtype in types:
        for model in rtype.models:
            queryset = scoped(caller, rtype, model)
            if rtype.patient_path == "":
                queryset = queryset.filter(pk=patient.pk)
            else:
                queryset = queryset.filter(**{f"{rtype.patient_path}__pk": patient.pk})
            if since is not None:
                queryset = queryset.filter(updated_at__gte=since)
            found.append((rtype, queryset.order_by("pk")))
    return found


def _page(
    querysets: list[tuple[ResourceType, QuerySet[Any]]], offset: int, count: int
) -> tuple[int, list[tuple[ResourceType, Model]]]:
    """Total and the rows of [offset, offset + count) over the types in order."""
    total = 0
    rows: list[tuple[ResourceType, Model]] = []
    for rtype, queryset in querysets:
        size = queryset.count()
        start = max(0, offset - total)
        end = max(0, offset + count - total)
        if start < size and end > 0 and len(rows) < count:
            rows.extend((rtype, row) for row in queryset[start : min(end, size)])
        total += size
    return total, rows


def _links(request: HttpRequest, offset: int, count: int, total: int) -> list[dict[str, str]]:
    base = request.build_absolute_uri(request.path)
    params = request.GET.copy()

    def link(relation: str, at: int) -> dict[str, str]:
        params["_offset"] = str(at)
        params["_count"] = str(count)
        return {"relation": relation, "url": f"{base}?{urlencode(params, doseq=True)}"}

    links = [link("self", offset)]
    if offset + count < total:
        links.append(link("next", offset + count))
    if offset > 0:
        links.append(link("previous", max(0, offset - count)))
    return links


def patient_everything(request: HttpRequest, caller: Caller, fhir_id: str) -> HttpResponse:
    """`GET Patient/<id>/$everything`: a searchset Bundle of the patient's compartment."""
    if request.method != "GET":
        raise FhirHttpError(405, "Use GET for Patient/<id>/$everything.", code="not-supported")
    unknown = sorted(set(request.GET) - EVERYTHING_PARAMS)
    if unknown:
        raise FhirHttpError(
            400,
            f"$everything does not support {', '.join(unknown)}; "
            f"use {', '.join(sorted(EVERYTHING_PARAMS))}.",
            expression=unknown,
        )
    patient_type = _registered("Patient")
    caller.require("Patient", "r")
    patient = find(caller, patient_type, fhir_id)
    if patient is None:
        audit_access(
            request, caller, patient_type, "everything", outcome=Outcome.DENIED, object_id=fhir_id
        )
        raise not_found("Patient", fhir_id)
    since = parse_since(request.GET.get("_since", ""))
    count = min(_whole_number(request, "_count", DEFAULT_COUNT), MAX_COUNT) or DEFAULT_COUNT
    offset = _whole_number(request, "_offset", 0)
    types = _wanted_types(request, caller)
    total, rows = _page(_querysets(caller, types, patient, since), offset, count)
    for rtype in {rtype.name: rtype for rtype, _row in rows}.values():
        rtype.prepare_rows([row for kind, row in rows if kind is rtype])
    base = base_url(request)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": _links(request, offset, count, total),
        "entry": [
            {
                "fullUrl": f"{base}/{rtype.name}/{row.fhir_id}",  # type: ignore[attr-defined]
                "resource": rtype.to_fhir(row),
                "search": {"mode": "match"},
            }
            for rtype, row in rows
        ],
    }
    audit_access(
        request,
        caller,
        patient_type,
        "everything",
        obj=patient,
        patient_ids={patient.pk},
        extra={"total": total, "query": request.GET.urlencode()[:500]},
    )
    return fhir_response(bundle)


def _content(document: Model) -> tuple[bytes, str, str]:
    """The decrypted bytes, content type and file name of a document or a clinical note."""
    if isinstance(document, ClinicalNote):
        return document.text.encode(), "text/plain; charset=utf-8", f"{document.fhir_id}.txt"
    assert isinstance(document, DocumentReference)  # noqa: S101 - the type's only other model
    try:
        content = open_document(document)
    except (FileNotFoundError, DecryptionError):
        logger.exception("Content of DocumentReference %s cannot be read", document.fhir_id)
        raise FhirHttpError(
            500,
            "The document's stored content is missing or damaged; the error was logged for "
            "the administrators.",
            code="exception",
        ) from None
    return content, document.content_type, document.filename


def _wants_resource(request: HttpRequest) -> bool:
    accept = request.headers.get("Accept", "")
    return FHIR_JSON in accept or request.GET.get("_format", "") in ("json", FHIR_JSON)


def binary_content(request: HttpRequest, caller: Caller, fhir_id: str) -> HttpResponse:
    """`GET Binary/<id>`: the content of the DocumentReference with that id, if visible."""
    if request.method != "GET":
        raise FhirHttpError(405, "Binary is read-only here; use GET.", code="not-supported")
    rtype = _registered("DocumentReference")
    caller.require("DocumentReference", "r")
    document = find(caller, rtype, fhir_id)
    if document is None:
        audit_access(request, caller, rtype, "binary", outcome=Outcome.DENIED, object_id=fhir_id)
        raise not_found("Binary", fhir_id)
    content, content_type, filename = _content(document)
    audit_access(
        request,
        caller,
        rtype,
        "binary",
        obj=document,
        patient_ids={document.patient_id},  # type: ignore[attr-defined]
        extra={"size": len(content)},
    )
    if _wants_resource(request):
        return fhir_response(
            {
                "resourceType": "Binary",
                "id": fhir_id,
                "contentType": content_type,
                "securityContext": {"reference": f"DocumentReference/{fhir_id}"},
                "data": base64.b64encode(content).decode(),
            }
        )
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response
