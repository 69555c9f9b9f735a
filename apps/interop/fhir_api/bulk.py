"""Bulk Data Access IG endpoints: `$export` kick-off, status polling/cancel, file download."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.http import http_date

from apps.audit.models import Action, Outcome
from apps.audit.services import record as audit

from .. import export
from ..models import ExportJob
from .auth import Caller
from .errors import FhirHttpError, fhir_response, operation_outcome
from .scope import visible_patients
from .views import base_url

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = {
    "application/fhir+ndjson",
    "application/fhir ndjson",  # an unencoded "+" in a query string reads as a space
    "application/ndjson",
    "ndjson",
}
SUPPORTED = {"_outputFormat", "_type", "_since"}
# Read by the views layer, not by the export.
IGNORED = {"_format"}
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
POLL_SECONDS = "2"
FILE_NAME = re.compile(r"^(?P<type>[A-Za-z]+)-(?P<index>\d+)\.ndjson$")


def kickoff(request: HttpRequest, caller: Caller, level: str, fhir_id: str) -> HttpResponse:
    """Validate the request, create the job and answer 202 with its status URL."""
    if request.method not in ("GET", "POST"):
        raise FhirHttpError(
            405,
            f"{request.method} is not supported on $export (use GET or POST).",
            code="not-supported",
        )
    prefer = _prefer(request)
    if "respond-async" not in prefer:
        raise FhirHttpError(
            400,
            "$export is asynchronous: send the header 'Prefer: respond-async'.",
            expression=["Prefer"],
        )
    params = _parameters(request)
    notes = _check_unsupported(params, strict="handling=strict" in prefer)
    _check_output_format(params.get("_outputFormat", []))
    types = [name.strip() for value in params.get("_type", []) for name in value.split(",")]
    since = _since(params.get("_since", []))
    job = export.start_export(
        caller,
        level=level,
        group_id=fhir_id,
        types=[name for name in types if name] or None,
        since=since,
        request_url=request.build_absolute_uri(),
    )
    patients = None if level == ExportJob.Level.SYSTEM else _patient_count(caller, job)
    audit(
        Action.EXPORT,
        request=request,
        actor=caller.user,
        object_type="fhir.$export",
        object_id=str(job.pk),
        detail={
            "fhir": "bulk-export",
            "caller": caller.label,
            "kind": caller.kind,
            "level": level,
            "group": job.group_id,
            "types": job.types,
            "since": since.isoformat() if since else None,
            "patients": patients,
        },
    )
    location = f"{base_url(request)}/bulk/{job.pk}"
    outcome = operation_outcome(
        " ".join([f"Export {job.pk} accepted; poll {location} for its progress.", *notes]),
        code="informational",
        severity="information",
    )
    return fhir_response(outcome, status=202, headers={"Content-Location": location})


def status(request: HttpRequest, caller: Caller, job_id: str) -> HttpResponse:
    """GET: 202 with X-Progress while running, then the manifest; DELETE: cancel."""
    job = _job_for(caller, job_id)
    if request.method == "DELETE":
        export.cancel_export(job)
        audit(
            Action.DELETE,
            request=request,
            actor=caller.user,
            object_type="fhir.$export",
            object_id=str(job.pk),
            detail={"fhir": "bulk-cancel", "caller": caller.label, "kind": caller.kind},
        )
        outcome = operation_outcome(
            f"Export {job.pk} is cancelled and its files are deleted.",
            code="informational",
            severity="information",
        )
        return fhir_response(outcome, status=202)
    if request.method != "GET":
        raise FhirHttpError(
            405,
            f"{request.method} is not supported on an export status URL (GET or DELETE).",
            code="not-supported",
        )
    if job.status in (ExportJob.Status.QUEUED, ExportJob.Status.RUNNING):
        return HttpResponse(
            status=202,
            headers={
                "X-Progress": f"{job.progress}% ({job.resources_done}/{job.resources_total} "
                "resources)",
                "Retry-After": POLL_SECONDS,
            },
        )
    if job.status == ExportJob.Status.FAILED:
        raise FhirHttpError(500, job.error or "The export failed.", code="exception")
    return _manifest(request, job)


def _manifest(request: HttpRequest, job: ExportJob) -> HttpResponse:
    base = base_url(request)
    started = job.started_at or job.created_at
    manifest = {
        "transactionTime": started.isoformat(),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {
                "type": file.resource_type,
                "url": f"{base}/bulk/{job.pk}/{file}",
                "count": file.count,
            }
            for file in job.files.all()
        ],
        "error": [],
    }
    headers = {"Expires": http_date(job.expires_at.timestamp())} if job.expires_at else {}
    response = HttpResponse(json.dumps(manifest), content_type="application/json", headers=headers)
    return response


def download(request: HttpRequest, caller: Caller, job_id: str, name: str) -> StreamingHttpResponse:
    """Stream one file, decrypted block by block, to the job's requester only."""
    if request.method not in ("GET", "HEAD"):
        raise FhirHttpError(405, "Export files are read with GET.", code="not-supported")
    try:
        job = _job_for(caller, job_id)
    except FhirHttpError:
        _audit_download(request, caller, job_id, name, outcome=Outcome.DENIED)
        raise
    match = FILE_NAME.match(name)
    export_file = (
        job.files.filter(resource_type=match["type"], index=int(match["index"])).first()
        if match and job.status == ExportJob.Status.COMPLETED
        else None
    )
    if export_file is None or not export.storage_path(export_file.storage_name).is_file():
        _audit_download(request, caller, job_id, name, outcome=Outcome.DENIED)
        raise FhirHttpError(404, f"Export file {name} is not known.", code="not-found")
    caller.require(export_file.resource_type, "r")
    _audit_download(request, caller, job_id, name, count=export_file.count)
    response = StreamingHttpResponse(export.read_file(export_file), content_type=NDJSON)
    response["Cache-Control"] = "no-store"
    return response


def _audit_download(
    request: HttpRequest,
    caller: Caller,
    job_id: str,
    name: str,
    *,
    outcome: str = Outcome.SUCCESS,
    count: int = 0,
) -> None:
    audit(
        Action.EXPORT if outcome == Outcome.SUCCESS else Action.DENIED,
        request=request,
        actor=caller.user,
        object_type="fhir.$export",
        object_id=job_id,
        outcome=outcome,
        detail={
            "fhir": "bulk-download",
            "file": name,
            "count": count,
            "caller": caller.label,
            "kind": caller.kind,
        },
    )


def _job_for(caller: Caller, job_id: str) -> ExportJob:
    """The caller's own live job; anything else (other requester, cancelled, expired) is 404."""
    try:
        key = uuid.UUID(job_id)
    except ValueError:
        raise FhirHttpError(404, f"Export {job_id} is not known.", code="not-found") from None
    job = ExportJob.objects.filter(pk=key, requester=caller.key).first()
    expired = job is not None and job.expires_at is not None and job.expires_at <= timezone.now()
    if job is None or job.status == ExportJob.Status.CANCELLED or expired:
        raise FhirHttpError(404, f"Export {job_id} is not known.", code="not-found")
    return job


def _prefer(request: HttpRequest) -> set[str]:
    values = ",".join(request.headers.get("Prefer", "").split(";"))
    return {token.strip().lower().replace(" ", "") for token in values.split(",") if token}


def _parameters(request: HttpRequest) -> dict[str, list[str]]:
    """The kick-off parameters, from the query (GET) or a Parameters resource (POST)."""
    if request.method == "GET":
        return {name: request.GET.getlist(name) for name in request.GET}
    params: dict[str, list[str]] = {name: request.GET.getlist(name) for name in request.GET}
    if not request.body.strip():
        return params
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise FhirHttpError(
            400, "The body is not valid JSON (expected a Parameters resource)."
        ) from None
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirHttpError(400, "The body of a POST $export must be a Parameters resource.")
    for parameter in body.get("parameter") or []:
        if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
            raise FhirHttpError(400, "Every Parameters.parameter needs a name.")
        values = [v for k, v in parameter.items() if k.startswith("value")]
        if parameter["name"] in SUPPORTED and not (values and isinstance(values[0], str)):
            raise FhirHttpError(
                400,
                f"Parameter {parameter['name']} needs a string value "
                "(valueString, valueCode or valueInstant).",
                expression=[parameter["name"]],
            )
        params.setdefault(parameter["name"], []).append(str(values[0]) if values else "")
    return params


def _check_unsupported(params: dict[str, Any], *, strict: bool) -> list[str]:
    unsupported = sorted(name for name in params if name not in SUPPORTED | IGNORED)
    if not unsupported:
        return []
    text = f"Unsupported parameter(s) {', '.join(unsupported)}"
    if strict:
        raise FhirHttpError(
            400, f"{text} (refused because of 'Prefer: handling=strict').", code="not-supported"
        )
    return [f"{text} were ignored."]


def _check_output_format(values: list[str]) -> None:
    for value in values:
        if value.strip().lower() not in OUTPUT_FORMATS:
            raise FhirHttpError(
                400,
                f"_outputFormat {value!r} is not supported; use application/fhir+ndjson.",
                expression=["_outputFormat"],
            )


def _since(values: list[str]) -> dt.datetime | None:
    if not values:
        return None
    if len(values) > 1:
        raise FhirHttpError(400, "_since may be given once.", expression=["_since"])
    text = values[0].strip().replace(" ", "+")
    parsed = None
    if INSTANT.match(text):
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
    if parsed is None:
        raise FhirHttpError(
            400,
            f"_since {values[0]!r} is not a FHIR instant (e.g. 2024-01-31T08:00:00Z, with "
            "seconds and a time zone).",
            expression=["_since"],
        )
    return parsed


def _patient_count(caller: Caller, job: ExportJob) -> int:
    patients = visible_patients(caller)
    if job.level == ExportJob.Level.GROUP:
        patients = patients.filter(organization=export.find_group(job.group_id))
    return patients.count()
