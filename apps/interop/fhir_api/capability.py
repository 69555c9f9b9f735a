"""The CapabilityStatement, generated from the registry: types, their interactions (writes
where `writable`), search parameters, includes, operations and security."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from .errors import FHIR_JSON, FHIR_VERSION
from .registry import REFERENCE, ResourceType, SearchParam, all_types
from .resources_scheduling import SLOT, slot_capability

BULK = "http://hl7.org/fhir/uv/bulkdata"
EVERYTHING = ("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything")
SYSTEM_EXPORT = ("export", f"{BULK}/OperationDefinition/export")
PATIENT_EXPORT = ("export", f"{BULK}/OperationDefinition/patient-export")
GROUP_EXPORT = ("export", f"{BULK}/OperationDefinition/group-export")
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"
# Control parameters every search accepts (see search.py).
COMMON_PARAMS = [
    ("_count", "number", "Page size (default 50, at most 500); next/previous links page on."),
    ("_offset", "number", "Position of the page's first match (set by the paging links)."),
    ("_sort", "string", "Comma-separated sortable parameters, '-' for descending."),
    ("_summary", "token", "Only 'count': the total without the matches."),
]


def _interactions(rtype: ResourceType) -> list[dict[str, str]]:
    codes = ["read", "vread", "search-type"]
    if rtype.writable:
        codes += ["create", "update"]
    return [{"code": code} for code in codes]


def _url(base: str, name: str) -> str | None:
    try:
        return base.rsplit("/fhir", 1)[0] + reverse(name)
    except NoReverseMatch:
        return None


def _operation(name: str, definition: str) -> dict[str, str]:
    return {"name": name, "definition": definition}


def _search_param(param: SearchParam) -> dict[str, str]:
    entry = {"name": param.name, "type": param.type}
    if param.documentation:
        entry["documentation"] = param.documentation
    return entry


def _revincludes(rtype: ResourceType, types: list[ResourceType]) -> list[str]:
    """'Source:param' for every reference parameter of another type that points to `rtype`."""
    return [
        f"{source.name}:{param.name}"
        for source in types
        for param in sorted(source.params.values(), key=lambda p: p.name)
        if param.type == REFERENCE and rtype.name in param.targets
    ]


def _resource(rtype: ResourceType, types: list[ResourceType]) -> dict[str, Any]:
    writable = rtype.writable
    entry: dict[str, Any] = {
        "type": rtype.name,
        "interaction": _interactions(rtype),
        "versioning": "versioned-update" if writable else "versioned",
        "readHistory": False,
        "updateCreate": writable,
        "conditionalCreate": writable,
        "conditionalUpdate": writable,
        "conditionalDelete": "not-supported",
        "searchParam": [
            _search_param(p) for p in sorted(rtype.params.values(), key=lambda p: p.name)
        ],
    }
    if rtype.includes:
        entry["searchInclude"] = [f"{rtype.name}:{name}" for name in rtype.includes]
    revincludes = _revincludes(rtype, types)
    if revincludes:
        entry["searchRevInclude"] = revincludes
    if rtype.name == "Patient":
        entry["operation"] = [_operation(*EVERYTHING), _operation(*PATIENT_EXPORT)]
    return entry


def _security(base: str) -> dict[str, Any]:
    security: dict[str, Any] = {
        "cors": "corsheaders" in settings.INSTALLED_APPS,
        "service": [
            {
                "coding": [
                    {
                        "system": SECURITY_SERVICE,
                        "code": "SMART-on-FHIR",
                        "display": "SMART-on-FHIR",
                    }
                ],
                "text": "OAuth2 bearer tokens with SMART v2 scopes",
            }
        ],
        "description": (
            "Bearer tokens with SMART v2 scopes: patient/ (the patient's own compartment), "
            "user/ (what the staff member may see), system/ (backend services, OAuth2 client "
            "credentials grant at the token URL, HTTP Basic client authentication). Every "
            "access is audited."
        ),
    }
    uris = [
        {"url": name, "valueUri": url}
        for name, url in (
            ("token", _url(base, "oauth2-token")),
            ("revoke", _url(base, "oauth2-revoke")),
        )
        if url
    ]
    if uris:
        security["extension"] = [{"url": OAUTH_URIS, "extension": uris}]
    return security


def capability_statement(base: str) -> dict[str, Any]:
    types = all_types()
    resources = [_resource(rtype, types) for rtype in types]
    # Slots are computed, not registered rows (resources_scheduling.SLOT describes them).
    resources.append(slot_capability(_resource(SLOT, types)))
    resources.sort(key=lambda entry: entry["type"])
    resources.append({"type": "Group", "operation": [_operation(*GROUP_EXPORT)]})
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "Patient data is served to callers who may see it; others get 404.",
        "security": _security(base),
        "resource": resources,
        "searchParam": [
            {"name": name, "type": kind, "documentation": text}
            for name, kind, text in COMMON_PARAMS
        ],
        "interaction": [{"code": "transaction"}, {"code": "batch"}],
        "operation": [_operation(*SYSTEM_EXPORT)],
    }
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": timezone.now().isoformat(timespec="seconds"),
        "publisher": "Hôpital virtuel",
        "kind": "instance",
        "software": {"name": "Hôpital virtuel"},
        "implementation": {"description": "Virtual hospital FHIR API", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": [FHIR_JSON, "json"],
        "rest": [rest],
        "instantiates": [f"{BULK}/CapabilityStatement/bulk-data"],
    }
    return statement


def smart_configuration(base: str) -> dict[str, Any]:
    """`/fhir/.well-known/smart-configuration` (SMART App Launch 2.x discovery) for backends."""
    return {
        "issuer": base,
        "token_endpoint": _url(base, "oauth2-token"),
        "revocation_endpoint": _url(base, "oauth2-revoke"),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["system/*.rs", "system/*.cruds", "user/*.rs", "patient/*.rs"],
        "response_types_supported": ["token"],
        "capabilities": ["client-confidential-symmetric", "permission-v2"],
        "code_challenge_methods_supported": ["S256"],
    }
