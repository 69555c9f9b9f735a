"""Check and persist one incoming resource: the step shared by writes and Bundles.

Run inside `transaction.atomic()`; every failure is a FhirHttpError. In order:
1. the caller may write the type (403): its scopes grant `c` (create) or `u` (update), and
   - a backend system (SYSTEM) writes any row its scopes name;
   - a staff member (USER) must have a clinical role (the portal's `_check_writer` rule), may
     write only in the compartments it may see (care team or emergency access) and only the
     sensitive categories its role may see. Staff tokens may update Patient demographics of
     those patients but not create patients: a new patient has no care team yet, so its
     creator could not even read it back; registration belongs to the hospital information
     system (system token) or the portal;
   - a patient (PATIENT) may only create Observations (home measurements) in their own
     compartment;
2. the body is JSON, of the URL's type, valid R4 structure (400), and keeps the required
   bindings and invariants (`rules`, 422);
3. the compartment (subject/patient) must be visible: otherwise 404, audited, as for reads
   (for systems, which see everything, a patient that does not exist is a 422 instead); the
   subject of a stored resource never changes;
4. every other reference must name a resource the caller may see (422 naming it);
5. the row is saved (`persist`) and one audit row (create/update) is written.

The resource's `meta.versionId`/`lastUpdated` are ignored: the database keeps versions.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.http import HttpRequest, QueryDict

from apps.accounts.models import CLINICAL_ROLES
from apps.audit.models import Action, Outcome
from apps.audit.services import record as audit
from apps.records.access import sensitivities_for
from apps.records.fhir import FhirError, validate
from apps.records.fhir.helpers import _sensitivity
from apps.records.models import Patient

from . import persist
from .auth import PATIENT, SYSTEM, USER, Caller
from .errors import FhirHttpError
from .registry import ResourceType, get
from .rules import check_rules
from .scope import patient_of, scoped, visible_patients
from .search import CONTROL, parse

JSON_TYPES = ("application/fhir+json", "application/json", "text/json")


class Denied(FhirHttpError):
    """A 404 for something the caller may not see; audited once the transaction is undone."""

    def __init__(self, type_name: str, fhir_id: str, *, patient_id: int | None = None) -> None:
        super().__init__(
            404, f"{type_name}/{fhir_id} is not known (or you may not see it).", code="not-found"
        )
        self.type_name = type_name
        self.fhir_id = fhir_id
        self.patient_id = patient_id


@dataclass(frozen=True)
class Saved:
    obj: Any
    created: bool


# ---------------------------------------------------------------------------------------------
# Reading and checking the body


def parse_body(request: HttpRequest) -> dict[str, Any]:
    """The request's JSON object, or 400/415 saying what is wrong with it."""
    content_type = request.content_type or ""
    if content_type and not any(content_type.startswith(kind) for kind in JSON_TYPES):
        raise FhirHttpError(
            415,
            f"Send the resource as application/fhir+json (Content-Type was {content_type!r}).",
            code="not-supported",
        )
    return parse_json(request.body)


def parse_json(raw: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise FhirHttpError(
            400, f"The body is not valid JSON: {error}.", code="structure"
        ) from None
    if not isinstance(data, dict):
        raise FhirHttpError(400, "The body must be one JSON object (a FHIR resource).")
    return data


def check_resource(data: dict[str, Any], type_name: str) -> None:
    """The resource is a `type_name`, structurally valid R4, and keeps the rules we check."""
    given = data.get("resourceType")
    if given != type_name:
        raise FhirHttpError(
            400,
            f"The resource's resourceType is {given!r} but this endpoint takes a {type_name}.",
            expression=[f"{type_name}.resourceType"],
        )
    try:
        validate(data)
    except FhirError as error:
        raise FhirHttpError(400, str(error), code="structure") from None
    check_rules(data)


# ---------------------------------------------------------------------------------------------
# Finding rows


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True


def locate(caller: Caller, rtype: ResourceType, fhir_id: str) -> tuple[Any | None, bool]:
    """(the row, locked for update, if the caller may see it; whether such a row exists)."""
    if not is_uuid(fhir_id):
        return None, False
    for model in rtype.models:
        found = (
            scoped(caller, rtype, model)
            .filter(fhir_id=fhir_id)
            .select_for_update(of=("self",))
            .first()
        )
        if found is not None:
            return found, True
    exists = any(m._default_manager.filter(fhir_id=fhir_id).exists() for m in rtype.models)
    return None, exists


def matches(caller: Caller, rtype: ResourceType, criteria: QueryDict, what: str) -> list[Any]:
    """The rows (at most 2) the caller may see that match search `criteria`."""
    if not any(key.partition(":")[0] not in CONTROL for key in criteria):
        raise FhirHttpError(
            400,
            f"A {what} needs search criteria, e.g. identifier=<system>|<value>.",
            code="required",
        )
    _lock(f"{rtype.name}?{criteria.urlencode()}")
    query = parse(rtype, rtype.models[0], criteria)
    found: list[Any] = []
    for model in rtype.models:
        queryset = scoped(caller, rtype, model).filter(query.filters).order_by("pk")
        found.extend(queryset.select_for_update(of=("self",))[:2])
    return found


def _lock(key: str) -> None:
    """Serialise conditional writes on the same criteria until the transaction ends.

    Without it, two identical conditional creates sent at once would both find nothing and
    both create: the idempotence a resending system relies on would be lost.
    """
    if connection.vendor != "postgresql":
        return
    number = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [number])


def check_version(obj: Any, if_match: str) -> None:
    """`If-Match: W/"<version>"`: 412 unless it names the stored version."""
    if not if_match:
        return
    wanted = if_match.strip().removeprefix("W/").strip('"')
    if wanted != str(obj.version):
        raise FhirHttpError(
            412,
            f"Version conflict: If-Match asked for version {wanted} but the current version "
            f"is {obj.version}. Read the resource again and reapply your change.",
            code="conflict",
        )


# ---------------------------------------------------------------------------------------------
# Who may write what


def check_writer(caller: Caller, rtype: ResourceType, permission: str) -> None:
    if not rtype.writable:
        raise FhirHttpError(405, f"{rtype.name} is read-only in this API.", code="not-supported")
    caller.require(rtype.name, permission)
    if caller.kind == PATIENT and (rtype.name != "Observation" or permission != "c"):
        raise FhirHttpError(
            403,
            "A patient's token may only add Observations (home measurements) to its own record.",
            code="forbidden",
        )
    if caller.kind == USER:
        user = caller.user
        if user is None or user.role not in CLINICAL_ROLES:
            raise FhirHttpError(403, "Only clinical staff may change the record.", code="forbidden")
        if rtype.name == "Patient" and permission == "c":
            raise FhirHttpError(
                403,
                "Staff tokens cannot register patients: the hospital information system "
                "(with a system token) or the portal does that.",
                code="forbidden",
            )


def _subject_path(rtype: ResourceType) -> str:
    return {"AllergyIntolerance": "patient", "Task": "for"}.get(rtype.name, "subject")


def compartment(
    caller: Caller, rtype: ResourceType, data: dict[str, Any], target: Any | None
) -> Patient | None:
    """The patient whose record is written (visible to the caller), None for a new Patient."""
    if rtype.name == "Patient":
        return target  # type: ignore[no-any-return]
    path = f"{rtype.name}.{_subject_path(rtype)}"
    reference = (data.get(_subject_path(rtype)) or {}).get("reference")
    if not isinstance(reference, str) or not reference:
        raise FhirHttpError(
            422, f"{path} is required: name the patient, e.g. Patient/<id>.", expression=[path]
        )
    type_name, fhir_id, _version = _split(reference)
    if type_name != "Patient":
        raise FhirHttpError(
            422, f"{path} must reference a Patient, not {reference!r}.", expression=[path]
        )
    patient = visible_patients(caller).filter(fhir_id=fhir_id).first() if is_uuid(fhir_id) else None
    if patient is None:
        if caller.kind == SYSTEM:
            raise FhirHttpError(
                422,
                f"{path} references Patient/{fhir_id}, which does not exist.",
                code="processing",
                expression=[path],
            )
        raise Denied("Patient", fhir_id)
    current = patient_of(rtype, target) if target is not None else None
    if current is not None and current.pk != patient.pk:
        raise FhirHttpError(
            422,
            f"{path} cannot change: this {rtype.name} belongs to another patient.",
            expression=[path],
        )
    if caller.kind == USER and caller.user is not None:
        label = _sensitivity(data)
        if label not in sensitivities_for(caller.user):
            raise FhirHttpError(
                403,
                f"Your role may not write {rtype.name} resources labelled {label} (meta.security).",
                code="forbidden",
                expression=[f"{rtype.name}.meta.security"],
            )
    return patient


def _split(reference: str) -> tuple[str, str, str]:
    """(type, id, version) of "Type/id[/_history/n]" (relative or absolute)."""
    parts = reference.rstrip("/").split("/")
    version = ""
    if len(parts) >= 4 and parts[-2] == "_history":
        version, parts = parts[-1], parts[:-2]
    if len(parts) < 2:
        return "", reference, ""
    return parts[-2], parts[-1], version


def references(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """(FHIRPath, reference) of every literal reference inside `value`."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield path, item
            else:
                yield from references(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from references(item, f"{path}[{index}]")


def check_references(caller: Caller, rtype: ResourceType, data: dict[str, Any], base: str) -> None:
    """Each reference (but the subject, checked first) names a row the caller may see: or 422."""
    skip = f"{rtype.name}.{_subject_path(rtype)}"
    for path, reference in references(data, rtype.name):
        if path == skip:
            continue

        def refuse(why: str, path: str = path, reference: str = reference) -> FhirHttpError:
            return FhirHttpError(
                422,
                f"{path} references {reference!r}: {why}",
                code="processing",
                expression=[path],
            )

        text = reference
        if text.startswith(("http://", "https://")):
            if not text.startswith(base.rstrip("/") + "/"):
                raise refuse("only references to resources of this server are accepted.")
            text = text[len(base.rstrip("/")) + 1 :]
        if text.startswith("urn:"):
            raise refuse("it does not name a resource of this Bundle or of this server.")
        if text.startswith("#"):
            raise refuse("contained resources are not accepted; send them separately.")
        type_name, fhir_id, _version = _split(text)
        target_type = get(type_name)
        if target_type is None or caller.kind not in target_type.kinds:
            raise refuse(f"{type_name or 'its type'} resources are not served here.")
        visible = is_uuid(fhir_id) and any(
            scoped(caller, target_type, model).filter(fhir_id=fhir_id).exists()
            for model in target_type.models
        )
        if not visible:
            raise refuse("no such resource (or you may not see it).")


# ---------------------------------------------------------------------------------------------
# Saving


def save_resource(
    request: HttpRequest,
    caller: Caller,
    rtype: ResourceType,
    data: dict[str, Any],
    *,
    target: Any | None = None,
    fhir_id: str | None = None,
    base: str,
) -> Saved:
    """Check, permission-check and persist `data` (update `target`, or create with `fhir_id`)."""
    check_writer(caller, rtype, "u" if target is not None else "c")
    check_resource(data, rtype.name)
    patient = compartment(caller, rtype, data, target)
    check_references(caller, rtype, data, base)
    data = dict(data)
    if target is not None:
        data["id"] = str(target.fhir_id)
    elif fhir_id is not None:
        data["id"] = fhir_id
    else:
        data.pop("id", None)
    obj = persist.persist(caller, rtype, data, target=target, patient=patient, request=request)
    audit_write(request, caller, rtype, obj, created=target is None)
    return Saved(obj, created=target is None)


def audit_write(
    request: HttpRequest, caller: Caller, rtype: ResourceType, obj: Any, *, created: bool
) -> None:
    patient = patient_of(rtype, obj)
    audit(
        Action.CREATE if created else Action.UPDATE,
        request=request,
        actor=caller.user,
        object_type=f"fhir.{rtype.name}",
        object_id=str(obj.fhir_id),
        patient_id=str(patient.pk) if patient is not None else "",
        detail={
            "fhir": "create" if created else "update",
            "caller": caller.label,
            "kind": caller.kind,
            "version": obj.version,
        },
    )


def audit_denied(
    request: HttpRequest, caller: Caller, rtype_name: str, denied: Denied, interaction: str
) -> None:
    """The refusal, written after the transaction was undone (so that it stays)."""
    patient_id = denied.patient_id
    if patient_id is None and denied.type_name == "Patient" and is_uuid(denied.fhir_id):
        patient_id = (
            Patient.objects.filter(fhir_id=denied.fhir_id).values_list("pk", flat=True).first()
        )
    audit(
        Action.DENIED,
        request=request,
        actor=caller.user,
        object_type=f"fhir.{rtype_name}",
        object_id=f"{denied.type_name}/{denied.fhir_id}",
        patient_id=str(patient_id or ""),
        outcome=Outcome.DENIED,
        detail={"fhir": interaction, "caller": caller.label, "kind": caller.kind},
    )
