"""Mapping of the record to and from FHIR R4 JSON (validated with fhir.resources' R4B models).

`to_fhir(obj)` gives one resource as a plain dict; `from_fhir(data)` gives back an unsaved model
instance (foreign keys set as `<name>_id`), or for CareTeam and Observation a dict of field
values with their child rows (`members`, `notes`) as lists of dicts. A resource's id is its
row's opaque `fhir_id` (a UUID, never the sequential database key; clinical notes, which are
DocumentReferences too, use theirs), with `meta.versionId` = `version` and `meta.lastUpdated` =
`updated_at` (see `apps.core.models.FhirResource`). References are "<Type>/<fhir_id>";
`from_fhir` resolves them by fhir_id, and `resolve_reference` does the same for callers, with
`RESOURCE_MODELS` naming the model(s) behind each type. People are referenced as
"Practitioner/<fhir_id>" when they have one, always with an identifier `SYS_USER|<user pk>` so
the account can be found again. Every clinical resource carries its sensitivity in
`meta.security` (v3 Confidentiality N/R plus the v3 ActCode PSY/SEX/ETH). `ext:x` below is an
extension `EXT + "x"`.

Modules: `codes` (code and identifier systems, extension URLs), `helpers` (shared element
builders and readers), `people`, `clinical` and `documents` (the mappers), `convert` (`to_fhir`,
`from_fhir`) and `bundle` (`validate`, `bundle`, `patient_bundle`). Import from this package, but
for `batch`: the same resources as NDJSON lines for many rows at once, without model instances
(Bulk Data `$export` of Observation, Encounter and Condition).

Model field                     FHIR element
------------------------------  ----------------------------------------------------------------
Organization                    Organization
  gln / name                    identifier[GLN urn:oid:2.51.1.3] / name
  phone / email / address       telecom[phone] / telecom[email] / address[0].text
Patient                         Patient (user, created_at: internal, not exported)
  ahv_number                    identifier[urn:oid:2.16.756.5.32]
  insurance_card_number         identifier[urn:oid:2.16.756.5.30.1.123.100.1.1.1].value
  insurer_name / insurer_gln    that identifier's assigner.display / assigner.identifier[GLN]
  family_name / given_names     name[0].family / name[0].given (split on spaces)
  birth_date / sex / active     birthDate / gender / active
  phone / email                 telecom[phone] / telecom[email]
  address_line, postal_code,    address[0].line[0], .postalCode, .city, .country
  city, country
  preferred_language            communication[0].language (urn:ietf:bcp:47), preferred
  contact_name / _relationship  contact[0].name.text / contact[0].relationship[0].text
  contact_phone                 contact[0].telecom[phone]
  organization                  managingOrganization
Practitioner                    Practitioner (name from the user account)
  user                          identifier[SYS_USER]
  registration_system/_number   identifier[GLN | RPPS urn:oid:1.2.250.1.71.4.2.1 | SYS_REGISTRATION]
  qualification                 qualification[0].code.text
PractitionerRole                PractitionerRole
  practitioner / organization   practitioner / organization
  code                          code[0] (SYS_ROLE, accounts.Role)
  specialty_code / _display     specialty[0] (SNOMED CT)
  active / period_start / _end  active / period.start / period.end
CareTeam                        CareTeam
  patient / name / active       subject / name / status (active | inactive)
  organization / created_at     managingOrganization[0] / period.start
  members (CareTeamMember)      participant[]: id = member pk, member, role[0] (SYS_ROLE),
                                period.start/.end = started_at/ended_at, ext:lead = is_lead
Clinical items (all below)      patient → subject (AllergyIntolerance: patient), sensitivity →
                                meta.security; recorded_at/recorded_by → the native element
                                named per resource, else ext:recorded / ext:recorder
Encounter                       Encounter: status, kind → class (v3 ActCode), reason →
                                reasonCode[0].text, practitioner → participant[0].individual,
                                started_at/ended_at → period; extras registered by other
                                apps (a video consultation): the other clinicians who
                                attended → participant[1..] (SPRF), appointment[0], length
                                (whole minutes of the call)
Condition                       Condition: code, clinical_status → clinicalStatus,
                                verification_status → verificationStatus, onset_date →
                                onsetDateTime, abatement_date → abatementDateTime, note →
                                note[0].text, encounter, recorded_at → recordedDate, recorded_by
                                → recorder; category = problem-list-item
AllergyIntolerance              AllergyIntolerance: substance → code, category[0], criticality,
                                clinical_status → clinicalStatus, reaction →
                                reaction[0].manifestation[0].text, onset_date → onsetDateTime,
                                recorded_at → recordedDate, recorded_by → recorder
MedicationStatement             MedicationStatement: medication → medicationCodeableConcept (ATC +
                                name as text), dosage → dosage[0].text, status, started_on/ended_on
                                → effectivePeriod, prescription → basedOn[0].identifier
                                (SYS_PRESCRIPTION|number), recorded_at → dateAsserted,
                                recorded_by → informationSource
MedicationRequest               MedicationRequest: prescription → groupIdentifier
                                (SYS_PRESCRIPTION|number), status/requester/encounter/
                                dispenseRequest.validityPeriod from the prescription,
                                medication → medicationCodeableConcept, dose →
                                dosageInstruction[0].text, route → .route (SNOMED CT),
                                frequency → .timing.repeat.frequency per 1 d, as_needed →
                                .asNeededBoolean, duration_days → .timing.repeat.boundsDuration
                                and dispenseRequest.expectedSupplyDuration, quantity →
                                dispenseRequest.quantity (packs), instructions →
                                .patientInstruction, recorded_at → authoredOn, recorded_by →
                                recorder; intent = order
Observation                     Observation: code (LOINC), category[0], status, value/unit →
                                valueQuantity (UCUM), ref_low/ref_high → referenceRange[0],
                                interpretation (v3 ObservationInterpretation), effective_at →
                                effectiveDateTime, source → ext:observation-source, device_id →
                                device.identifier (SYS_DEVICE) and, where the reader loaded it
                                (`device_fhir_id`), device.reference "Device/<fhir_id>"; report →
                                ext:report, encounter,
                                recorded_at → issued, recorded_by → performer[0]
  notes (ObservationNote)       note[]: id = pk, authorReference = author, time = created_at, text
DiagnosticReport                DiagnosticReport: code, category (v2-0074), status, issued_at →
                                issued, performer → performer[0].display, conclusion, document →
                                ext:document, encounter; result[] = its visible Observations
DocumentReference               DocumentReference: title → description, category → type (LOINC,
                                DOCUMENT_LOINC) and category[0] (SYS_DOCUMENT_CATEGORY), status,
                                content_type/size/filename → content[0].attachment.contentType/
                                .size/.title, sha256 → attachment ext:sha256, url =
                                records:document_download, recorded_at → date, recorded_by →
                                author[0], encounter → context.encounter[0] (storage_name,
                                thumbnail_name, key_id: storage internals, not exported)
ClinicalNote                    DocumentReference, category[0] = clinical-note: kind → type
                                (LOINC, NOTE_LOINC), title → description, text →
                                content[0].attachment.data (base64), status current/amended →
                                current/superseded (docStatus amended when it amends another),
                                signed_at → date, amends → relatesTo[replaces],
                                amendment_reason → ext:amendment-reason, signature →
                                ext:signature, recorded_by → author[0], encounter
devices.Device                  Device (read-only; `device_to_fhir`, not `to_fhir`): device_id →
                                identifier[SYS_DEVICE], serial → serialNumber, status active /
                                retired → active / inactive, kind → type (SNOMED CT where
                                DEVICE_SNOMED has one, always SYS_DEVICE_KIND|kind), manufacturer,
                                model → deviceName[model-name], patient, battery →
                                property[type.text "battery"].valueQuantity[0] (%), last_seen_at →
                                ext:last-seen (secret, registered_*, retired_*: never exported)
"""

from .bundle import bundle, patient_bundle, validate
from .clinical import device_reference, device_to_fhir
from .codes import (
    BCP47,
    CANONICAL,
    DEVICE_BATTERY,
    DEVICE_SNOMED,
    DOCUMENT_LOINC,
    ENCOUNTER_CLASS_DISPLAY,
    EXT,
    INTERPRETATION_DISPLAY,
    NOTE_CATEGORY,
    NOTE_LOINC,
    REGISTRATION_SYSTEMS,
    REPORT_CATEGORY_DISPLAY,
    ROUTE_SNOMED,
    SENSITIVITY_ACT,
    SYS_AHV,
    SYS_DEVICE,
    SYS_DEVICE_KIND,
    SYS_DOCUMENT_CATEGORY,
    SYS_GLN,
    SYS_INSURANCE_CARD,
    SYS_PRESCRIPTION,
    SYS_REGISTRATION,
    SYS_ROLE,
    SYS_RPPS,
    SYS_USER,
    TERMINOLOGY,
    UCUM,
    V3_ACT,
    V3_CONFIDENTIALITY,
    V3_INTERPRETATION,
)
from .convert import from_fhir, to_fhir
from .helpers import RESOURCE_MODELS, FhirError, resolve_reference

__all__ = [
    "BCP47",
    "CANONICAL",
    "DEVICE_BATTERY",
    "DEVICE_SNOMED",
    "DOCUMENT_LOINC",
    "ENCOUNTER_CLASS_DISPLAY",
    "EXT",
    "INTERPRETATION_DISPLAY",
    "NOTE_CATEGORY",
    "NOTE_LOINC",
    "REGISTRATION_SYSTEMS",
    "RESOURCE_MODELS",
    "REPORT_CATEGORY_DISPLAY",
    "ROUTE_SNOMED",
    "SENSITIVITY_ACT",
    "SYS_AHV",
    "SYS_DEVICE",
    "SYS_DEVICE_KIND",
    "SYS_DOCUMENT_CATEGORY",
    "SYS_GLN",
    "SYS_INSURANCE_CARD",
    "SYS_PRESCRIPTION",
    "SYS_REGISTRATION",
    "SYS_ROLE",
    "SYS_RPPS",
    "SYS_USER",
    "TERMINOLOGY",
    "UCUM",
    "V3_ACT",
    "V3_CONFIDENTIALITY",
    "V3_INTERPRETATION",
    "FhirError",
    "bundle",
    "device_reference",
    "device_to_fhir",
    "from_fhir",
    "patient_bundle",
    "resolve_reference",
    "to_fhir",
    "validate",
]
