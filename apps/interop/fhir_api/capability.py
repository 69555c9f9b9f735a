"""The CapabilityStatement, generated from what the registry really serves."""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from .errors import FHIR_VERSION
from .registry import all_types

# Operations served, with the module that implements them (checked before being declared).
OPERATIONS = [
    ("everything", "Patient", "http://hl7.org/fhir/OperationDefinition/Patient-everything"),
    ("export", None, "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"),
]


def _interactions(writable: bool) -> list[dict[str, str]]:
    codes = ["read", "vread", "search-type"] + (["create", "update"] if writable else [])
    return [{"code": code} for code in codes]


def _token_url(base: str) -> str | None:
    try:
        return base.rsplit("/fhir", 1)[0] + reverse("interop:oauth-token")
    except NoReverseMatch:
        return None


def capability_statement(base: str) -> dict[str, Any]:
    resources = []
    for rtype in all_types():
        entry: dict[str, Any] = {
            "type": rtype.name,
            "interaction": _interactions(rtype.writable),
            "versioning": "versioned-update",
            "readHistory": False,
            "updateCreate": False,
            "conditionalCreate": rtype.writable,
            "conditionalUpdate": rtype.writable,
            "searchParam": [
                {"name": p.name, "type": p.type}
                for p in sorted(rtype.params.values(), key=lambda p: p.name)
            ],
        }
        if rtype.includes:
            entry["searchInclude"] = [f"{rtype.name}:{name}" for name in rtype.includes]
        if rtype.name == "Patient":
            entry["operation"] = [
                {"name": name, "definition": definition}
                for name, on, definition in OPERATIONS
                if on == "Patient"
            ]
        resources.append(entry)
    security: dict[str, Any] = {
        "cors": False,
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "description": (
            "Bearer tokens with SMART v2 scopes: patient/ (the patient's own compartment), "
            "user/ (what the staff member may see), system/ (backend services, OAuth2 client "
            "credentials). Every access is audited."
        ),
    }
    token_url = _token_url(base)
    if token_url:
        security["extension"] = [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "token", "valueUri": token_url}],
            }
        ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": timezone.now().date().isoformat(),
        "kind": "instance",
        "software": {"name": "Hôpital virtuel"},
        "implementation": {"description": "Virtual hospital FHIR API", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": security,
                "resource": resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "operation": [
                    {"name": name, "definition": definition}
                    for name, on, definition in OPERATIONS
                    if on is None
                ],
            }
        ],
    }
