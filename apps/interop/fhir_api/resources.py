"""The patient record's resource types and their search parameters."""

from __future__ import annotations

from apps.accounts.models import Organization
from apps.devices.models import Device
from apps.records import fhir as records_fhir
from apps.records.models import (
    AllergyIntolerance,
    CareTeam,
    ClinicalNote,
    CodeSystem,
    Condition,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Patient,
    Practitioner,
    PractitionerRole,
)

from .registry import DATE, REFERENCE, STRING, TOKEN, ResourceType, SearchParam, register
from .resources_device import DEVICE_TYPE_PATHS, DeviceType, observation_to_fhir

to_fhir = records_fhir.to_fhir

LAST_UPDATED = SearchParam("_lastUpdated", DATE, ("updated_at",), sortable=True)


def _patient_ref(path: str = "patient") -> dict[str, SearchParam]:
    """`patient` and `subject` searching by the patient's FHIR id."""
    ref = SearchParam("patient", REFERENCE, (f"{path}__fhir_id",), targets=("Patient",))
    return {
        "patient": ref,
        "subject": SearchParam("subject", REFERENCE, ref.paths, targets=("Patient",)),
    }


def _params(*params: SearchParam, patient: bool = True) -> dict[str, SearchParam]:
    found = {p.name: p for p in params}
    found["_lastUpdated"] = LAST_UPDATED
    found["_id"] = SearchParam("_id", TOKEN, ("fhir_id",))
    if patient:
        found.update(_patient_ref())
    return found


def _code(path: str) -> SearchParam:
    return SearchParam("code", TOKEN, (f"{path}__system|{path}__code",))


register(
    ResourceType(
        "Patient",
        (Patient,),
        to_fhir,
        patient_path="",
        params=_params(
            SearchParam(
                "identifier",
                TOKEN,
                (
                    f"={records_fhir.SYS_AHV}|ahv_number",
                    f"={records_fhir.SYS_INSURANCE_CARD}|insurance_card_number",
                ),
            ),
            SearchParam("family", STRING, ("family_name",), sortable=True),
            SearchParam("given", STRING, ("given_names",), sortable=True),
            SearchParam("name", STRING, ("family_name", "given_names"), sortable=True),
            SearchParam("birthdate", DATE, ("birth_date",), sortable=True),
            SearchParam("gender", TOKEN, ("sex",)),
            SearchParam("active", TOKEN, ("active",)),
            patient=False,
        ),
        default_sort="family_name",
        select_related=("organization", "user"),
        writable=True,
    )
)
register(
    ResourceType(
        "Practitioner",
        (Practitioner,),
        to_fhir,
        patient_path=None,
        params=_params(
            SearchParam("identifier", TOKEN, ("registration_number",)),
            SearchParam("family", STRING, ("user__last_name",), sortable=True),
            SearchParam("given", STRING, ("user__first_name",)),
            SearchParam("name", STRING, ("user__last_name", "user__first_name")),
            patient=False,
        ),
        default_sort="user__last_name",
        select_related=("user",),
    )
)
register(
    ResourceType(
        "PractitionerRole",
        (PractitionerRole,),
        to_fhir,
        patient_path=None,
        params=_params(
            SearchParam(
                "practitioner",
                REFERENCE,
                ("practitioner__fhir_id",),
                targets=("Practitioner",),
            ),
            SearchParam(
                "organization",
                REFERENCE,
                ("organization__fhir_id",),
                targets=("Organization",),
            ),
            SearchParam("role", TOKEN, ("code",)),
            patient=False,
        ),
        select_related=("practitioner__user", "organization"),
        includes=("practitioner", "organization"),
    )
)
register(
    ResourceType(
        "Organization",
        (Organization,),
        to_fhir,
        patient_path=None,
        params=_params(
            SearchParam("identifier", TOKEN, (f"={records_fhir.SYS_GLN}|gln",)),
            SearchParam("name", STRING, ("name",), sortable=True),
            patient=False,
        ),
        default_sort="name",
    )
)
register(
    ResourceType(
        "CareTeam",
        (CareTeam,),
        to_fhir,
        patient_path="patient",
        params=_params(SearchParam("status", TOKEN, ("active",))),
        select_related=("patient", "organization"),
        prefetch_related=("members__user",),
        includes=("patient",),
    )
)
register(
    ResourceType(
        "Encounter",
        (Encounter,),
        to_fhir,
        patient_path="patient",
        # The extras other apps add (a video consultation's participants): one load per page.
        prepare=records_fhir.clinical.load_encounter_extras,
        params=_params(
            SearchParam("date", DATE, ("started_at",), sortable=True),
            SearchParam("status", TOKEN, ("status",)),
            SearchParam("class", TOKEN, ("kind",)),
        ),
        default_sort="-started_at",
        select_related=("patient", "practitioner"),
        includes=("patient",),
    )
)
register(
    ResourceType(
        "Condition",
        (Condition,),
        to_fhir,
        patient_path="patient",
        params=_params(
            _code("code"),
            SearchParam("clinical-status", TOKEN, ("clinical_status",)),
            SearchParam("onset-date", DATE, ("onset_date",), sortable=True),
            SearchParam("recorded-date", DATE, ("recorded_at",), sortable=True),
        ),
        default_sort="-recorded_at",
        select_related=("patient", "code", "recorded_by"),
        includes=("patient",),
        writable=True,
    )
)
register(
    ResourceType(
        "AllergyIntolerance",
        (AllergyIntolerance,),
        to_fhir,
        patient_path="patient",
        params=_params(
            _code("substance"),
            SearchParam("clinical-status", TOKEN, ("clinical_status",)),
            SearchParam("criticality", TOKEN, ("criticality",)),
            SearchParam("date", DATE, ("recorded_at",), sortable=True),
        ),
        default_sort="-recorded_at",
        select_related=("patient", "substance", "recorded_by"),
        includes=("patient",),
        writable=True,
    )
)
register(
    ResourceType(
        "MedicationStatement",
        (MedicationStatement,),
        to_fhir,
        patient_path="patient",
        params=_params(
            SearchParam("status", TOKEN, ("status",)),
            SearchParam("code", TOKEN, (f"={CodeSystem.ATC}|medication__atc_code",)),
            SearchParam("effective", DATE, ("started_on",), sortable=True),
        ),
        default_sort="-recorded_at",
        select_related=("patient", "medication", "prescription"),
        includes=("patient",),
    )
)
register(
    ResourceType(
        "MedicationRequest",
        (MedicationRequest,),
        to_fhir,
        patient_path="patient",
        params=_params(
            SearchParam("status", TOKEN, ("prescription__status",)),
            SearchParam("authoredon", DATE, ("prescription__signed_at",), sortable=True),
            SearchParam("code", TOKEN, (f"={CodeSystem.ATC}|medication__atc_code",)),
            SearchParam(
                "requester",
                REFERENCE,
                ("prescription__prescriber__practitioner__fhir_id",),
                targets=("Practitioner",),
            ),
        ),
        default_sort="-recorded_at",
        select_related=("patient", "medication", "prescription__prescriber__practitioner"),
        includes=("patient",),
        writable=True,
    )
)
register(
    ResourceType(
        "Observation",
        (Observation,),
        observation_to_fhir,
        patient_path="patient",
        params=_params(
            _code("code"),
            SearchParam("category", TOKEN, ("category",)),
            SearchParam("date", DATE, ("effective_at",), sortable=True),
            SearchParam("status", TOKEN, ("status",)),
            SearchParam(
                "device",
                REFERENCE,
                ("device_id__fhir_device",),
                targets=("Device",),
                documentation=(
                    "Device/<id>, or the device's identifier: "
                    f"{records_fhir.SYS_DEVICE}|dev-… (also with :identifier, or dev-… alone)."
                ),
                identifier=f"={records_fhir.SYS_DEVICE}|device_id",
            ),
            SearchParam("encounter", REFERENCE, ("encounter__fhir_id",), targets=("Encounter",)),
        ),
        default_sort="-effective_at",
        select_related=("patient", "code", "recorded_by", "report", "encounter"),
        prefetch_related=("notes__author",),
        includes=("patient", "encounter"),
        writable=True,
    )
)
register(
    ResourceType(
        "DiagnosticReport",
        (DiagnosticReport,),
        to_fhir,
        patient_path="patient",
        params=_params(
            _code("code"),
            SearchParam("category", TOKEN, ("category",)),
            SearchParam("date", DATE, ("issued_at",), sortable=True),
            SearchParam("status", TOKEN, ("status",)),
        ),
        default_sort="-issued_at",
        select_related=("patient", "code", "document"),
        prefetch_related=("results",),
        includes=("patient",),
    )
)
register(
    ResourceType(
        "DocumentReference",
        (DocumentReference, ClinicalNote),
        to_fhir,
        patient_path="patient",
        params=_params(
            SearchParam("date", DATE, ("recorded_at",), sortable=True),
            SearchParam("status", TOKEN, ("status",)),
        ),
        default_sort="-recorded_at",
        select_related=("patient", "recorded_by", "amends"),
        includes=("patient",),
        writable=True,
    )
)
register(
    DeviceType(
        "Device",
        (Device,),
        records_fhir.device_to_fhir,
        patient_path="patient",
        params=_params(
            SearchParam("identifier", TOKEN, (f"={records_fhir.SYS_DEVICE}|device_id",)),
            SearchParam(
                "type",
                TOKEN,
                DEVICE_TYPE_PATHS,
                documentation="SNOMED CT device code, or the device kind "
                f"({records_fhir.SYS_DEVICE_KIND}).",
            ),
            SearchParam("status", TOKEN, ("fhir_status",)),
            SearchParam("manufacturer", STRING, ("manufacturer",)),
            SearchParam("model", STRING, ("model",)),
        ),
        default_sort="-registered_at",
        select_related=("patient",),
        includes=("patient",),
    )
)
