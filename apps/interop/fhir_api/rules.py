"""Checks on incoming resources that fhir.resources' structural validation does not make.

Structure (types, cardinality, required elements) is `apps.records.fhir.validate` (400). Here:
required code bindings and the invariants of the written types (422), each problem named by
its FHIRPath so a person can find it.
"""

from __future__ import annotations

from typing import Any

from .errors import FhirHttpError

TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"

OBSERVATION_STATUS = frozenset(
    {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
CONDITION_CLINICAL = frozenset(
    {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
)
CONDITION_VERIFICATION = frozenset(
    {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
)
ALLERGY_CLINICAL = frozenset({"active", "inactive", "resolved"})
ALLERGY_VERIFICATION = frozenset({"unconfirmed", "confirmed", "refuted", "entered-in-error"})
ALLERGY_TYPE = frozenset({"allergy", "intolerance"})
ALLERGY_CATEGORY = frozenset({"food", "medication", "environment", "biologic"})
ALLERGY_CRITICALITY = frozenset({"low", "high", "unable-to-assess"})
REQUEST_STATUS = frozenset(
    {
        "active",
        "on-hold",
        "cancelled",
        "completed",
        "entered-in-error",
        "stopped",
        "draft",
        "unknown",
    }
)
REQUEST_INTENT = frozenset(
    {
        "proposal",
        "plan",
        "order",
        "original-order",
        "reflex-order",
        "filler-order",
        "instance-order",
        "option",
    }
)
DOCUMENT_STATUS = frozenset({"current", "superseded", "entered-in-error"})
GENDER = frozenset({"male", "female", "other", "unknown"})

Problem = tuple[str, str]  # (FHIRPath, message)


def _value_keys(data: dict[str, Any]) -> list[str]:
    return [key for key in data if key.startswith("value") and key != "value"]


def _codes(concept: Any, system: str) -> list[str]:
    """The codes of `system` in a CodeableConcept (the required binding's codings)."""
    if not isinstance(concept, dict):
        return []
    return [
        str(coding.get("code", ""))
        for coding in concept.get("coding", [])
        if isinstance(coding, dict) and coding.get("system") == system
    ]


def _bound(
    problems: list[Problem], path: str, value: Any, allowed: frozenset[str], label: str
) -> None:
    if value is not None and value not in allowed:
        problems.append(
            (path, f"{path} {value!r} is not a {label} code (one of: {', '.join(sorted(allowed))})")
        )


def _bound_concept(
    problems: list[Problem],
    path: str,
    concept: Any,
    system: str,
    allowed: frozenset[str],
    label: str,
) -> str | None:
    """The concept's code in `system`, checked against the required value set."""
    if concept is None:
        return None
    codes = _codes(concept, system)
    if not codes:
        problems.append((path, f"{path} needs a coding from {system}"))
        return None
    for code in codes:
        _bound(problems, path, code, allowed, label)
    return codes[0]


def _observation(data: dict[str, Any], problems: list[Problem]) -> None:
    _bound(
        problems, "Observation.status", data.get("status"), OBSERVATION_STATUS, "ObservationStatus"
    )
    values = _value_keys(data)
    if "dataAbsentReason" in data and values:  # obs-6
        problems.append(
            (
                "Observation.dataAbsentReason",
                "obs-6: dataAbsentReason SHALL only be present if Observation.value[x] is not "
                f"present (both {values[0]} and dataAbsentReason were sent)",
            )
        )
    own = {(c.get("system"), c.get("code")) for c in (data.get("code") or {}).get("coding", [])}
    for index, component in enumerate(data.get("component") or []):
        codes = {
            (c.get("system"), c.get("code"))
            for c in (component.get("code") or {}).get("coding", [])
        }
        if own & codes and values:  # obs-7
            problems.append(
                (
                    f"Observation.component[{index}].code",
                    "obs-7: when a component has the Observation's own code, Observation.value[x] "
                    "SHALL NOT be present",
                )
            )
        if "dataAbsentReason" in component and _value_keys(component):
            problems.append(
                (
                    f"Observation.component[{index}].dataAbsentReason",
                    "obs-6: a component's dataAbsentReason SHALL only be present without value[x]",
                )
            )


def _condition(data: dict[str, Any], problems: list[Problem]) -> None:
    clinical = _bound_concept(
        problems,
        "Condition.clinicalStatus",
        data.get("clinicalStatus"),
        TERMINOLOGY + "condition-clinical",
        CONDITION_CLINICAL,
        "ConditionClinicalStatusCodes",
    )
    verification = _bound_concept(
        problems,
        "Condition.verificationStatus",
        data.get("verificationStatus"),
        TERMINOLOGY + "condition-ver-status",
        CONDITION_VERIFICATION,
        "ConditionVerificationStatus",
    )
    in_error = verification == "entered-in-error"
    if data.get("clinicalStatus") is None and not in_error:  # con-3 (we file problem-list items)
        problems.append(
            (
                "Condition.clinicalStatus",
                "con-3: clinicalStatus SHALL be present unless verificationStatus is "
                "entered-in-error (conditions are filed as problem-list items)",
            )
        )
    abated = any(key.startswith("abatement") for key in data)
    if abated and clinical not in (None, "inactive", "resolved", "remission"):  # con-4
        problems.append(
            (
                "Condition.clinicalStatus",
                f"con-4: an abated condition's clinicalStatus must be inactive, resolved or "
                f"remission, not {clinical!r}",
            )
        )
    if in_error and data.get("clinicalStatus") is not None:  # con-5
        problems.append(
            (
                "Condition.clinicalStatus",
                "con-5: clinicalStatus SHALL NOT be present when verificationStatus is "
                "entered-in-error",
            )
        )


def _allergy(data: dict[str, Any], problems: list[Problem]) -> None:
    path = "AllergyIntolerance"
    _bound_concept(
        problems,
        f"{path}.clinicalStatus",
        data.get("clinicalStatus"),
        TERMINOLOGY + "allergyintolerance-clinical",
        ALLERGY_CLINICAL,
        "AllergyIntoleranceClinicalStatusCodes",
    )
    verification = _bound_concept(
        problems,
        f"{path}.verificationStatus",
        data.get("verificationStatus"),
        TERMINOLOGY + "allergyintolerance-verification",
        ALLERGY_VERIFICATION,
        "AllergyIntoleranceVerificationStatusCodes",
    )
    _bound(problems, f"{path}.type", data.get("type"), ALLERGY_TYPE, "AllergyIntoleranceType")
    for index, category in enumerate(data.get("category") or []):
        _bound(
            problems,
            f"{path}.category[{index}]",
            category,
            ALLERGY_CATEGORY,
            "AllergyIntoleranceCategory",
        )
    _bound(
        problems,
        f"{path}.criticality",
        data.get("criticality"),
        ALLERGY_CRITICALITY,
        "AllergyIntoleranceCriticality",
    )
    in_error = verification == "entered-in-error"
    if data.get("clinicalStatus") is None and not in_error:  # ait-1
        problems.append(
            (
                f"{path}.clinicalStatus",
                "ait-1: clinicalStatus SHALL be present unless verificationStatus is "
                "entered-in-error",
            )
        )
    if in_error and data.get("clinicalStatus") is not None:  # ait-2
        problems.append(
            (
                f"{path}.clinicalStatus",
                "ait-2: clinicalStatus SHALL NOT be present when verificationStatus is "
                "entered-in-error",
            )
        )


def _request(data: dict[str, Any], problems: list[Problem]) -> None:
    path = "MedicationRequest"
    _bound(
        problems, f"{path}.status", data.get("status"), REQUEST_STATUS, "medicationrequest Status"
    )
    _bound(
        problems, f"{path}.intent", data.get("intent"), REQUEST_INTENT, "medicationRequest Intent"
    )


def _document(data: dict[str, Any], problems: list[Problem]) -> None:
    _bound(
        problems,
        "DocumentReference.status",
        data.get("status"),
        DOCUMENT_STATUS,
        "DocumentReferenceStatus",
    )


def _patient(data: dict[str, Any], problems: list[Problem]) -> None:
    _bound(problems, "Patient.gender", data.get("gender"), GENDER, "AdministrativeGender")


_CHECKS = {
    "Observation": _observation,
    "Condition": _condition,
    "AllergyIntolerance": _allergy,
    "MedicationRequest": _request,
    "DocumentReference": _document,
    "Patient": _patient,
}


def check_rules(data: dict[str, Any]) -> None:
    """Raise a 422 listing every binding or invariant the resource breaks."""
    check = _CHECKS.get(str(data.get("resourceType")))
    if check is None:
        return
    problems: list[Problem] = []
    check(data, problems)
    if problems:
        raise FhirHttpError(
            422,
            "; ".join(message for _path, message in problems),
            code="business-rule",
            expression=[path for path, _message in problems],
        )
