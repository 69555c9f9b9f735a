"""The resource types the API serves: their models, search parameters and compartment paths.

The mapping to and from FHIR JSON lives in each app's `fhir` module; this registry only says
how to find rows. Later capabilities register their types here (`register`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Model, QuerySet

TOKEN = "token"  # noqa: S105 - the FHIR search parameter type, not a secret
STRING = "string"
DATE = "date"
REFERENCE = "reference"


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str
    # ORM paths searched (any of them matches). For tokens, (system path, code path) pairs
    # may be given as "system_path|code_path"; a fixed system as "=system-uri|code_path".
    paths: tuple[str, ...]
    sortable: bool = False
    # For references: the FHIR types they may point to.
    targets: tuple[str, ...] = ()
    documentation: str = ""
    # For references stored as a public identifier (Observation.device): the token path
    # searched by `:identifier`, by `system|value` and by a bare value that is not an id.
    identifier: str = ""


@dataclass
class ResourceType:
    name: str
    models: tuple[type[Model], ...]
    to_fhir: Callable[[Any], dict[str, Any]]
    # Path from the model to its Patient (None: not patient data; "" : the Patient itself).
    patient_path: str | None
    params: dict[str, SearchParam] = field(default_factory=dict)
    # Path to the date that orders results by default (newest first).
    default_sort: str = "-updated_at"
    select_related: tuple[str, ...] = ()
    prefetch_related: tuple[str, ...] = ()
    # Only callers with these kinds may use the type at all (e.g. AuditEvent for systems).
    kinds: tuple[str, ...] = ("patient", "user", "system")
    writable: bool = False
    # `_include` targets: param name -> FHIR type included.
    includes: tuple[str, ...] = ()
    base_filter: dict[str, Any] = field(default_factory=dict)
    # Called with a page of rows before they are mapped (loads what to_fhir needs at once).
    prepare: Callable[[list[Any]], None] | None = None

    def prepare_rows(self, rows: list[Any]) -> None:
        if self.prepare is not None and rows:
            self.prepare(rows)

    def allows(self, caller: Any) -> bool:
        """Whether the caller may use this type at all, beyond its kind (types override it)."""
        return True

    def restrict(self, caller: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """The rows of `queryset` this caller may see beyond the compartment rules of `scope`
        (types override it: e.g. staff-only messages are never a patient's)."""
        return queryset

    def queryset(self, model: type[Model]) -> QuerySet[Any]:
        queryset = model._default_manager.filter(**self.base_filter.get(model.__name__, {}))
        if self.select_related:
            related = [p for p in self.select_related if _has_path(model, p)]
            queryset = queryset.select_related(*related)
        if self.prefetch_related:
            queryset = queryset.prefetch_related(*self.prefetch_related)
        return queryset


def _has_path(model: type[Model], path: str) -> bool:
    try:
        for part in path.split("__"):
            model = model._meta.get_field(part).related_model  # type: ignore[assignment]
        return True
    except Exception:  # noqa: BLE001 - FieldDoesNotExist or a non-relation
        return False


REGISTRY: dict[str, ResourceType] = {}


def register(resource_type: ResourceType) -> None:
    REGISTRY[resource_type.name] = resource_type


def get(name: str) -> ResourceType | None:
    from . import (  # noqa: F401 - registers
        resources,
        resources_audit,
        resources_billing,
        resources_care,
        resources_messaging,
        resources_scheduling,
    )

    return REGISTRY.get(name)


def all_types() -> list[ResourceType]:
    from . import (  # noqa: F401
        resources,
        resources_audit,
        resources_billing,
        resources_care,
        resources_messaging,
        resources_scheduling,
    )

    return sorted(REGISTRY.values(), key=lambda t: t.name)
