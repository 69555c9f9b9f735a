"""FHIR responses and errors: every failure is an OperationOutcome with the right status."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"


class FhirHttpError(Exception):
    """Raised anywhere in the API; the view turns it into an OperationOutcome response."""

    def __init__(
        self,
        status: int,
        diagnostics: str,
        *,
        code: str = "invalid",
        expression: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code
        self.expression = expression or []
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.diagnostics, code=self.code, expression=self.expression)


def operation_outcome(
    diagnostics: str,
    *,
    code: str = "invalid",
    severity: str = "error",
    expression: list[str] | None = None,
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def fhir_response(
    data: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    body = b"" if data is None else json.dumps(data, ensure_ascii=False, default=str).encode()
    response = HttpResponse(body, status=status, content_type=f"{FHIR_JSON}; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_response(error: FhirHttpError) -> HttpResponse:
    return fhir_response(error.outcome(), status=error.status, headers=error.headers)


def not_found(resource_type: str, fhir_id: str) -> FhirHttpError:
    return FhirHttpError(
        404, f"{resource_type}/{fhir_id} is not known (or you may not see it).", code="not-found"
    )
