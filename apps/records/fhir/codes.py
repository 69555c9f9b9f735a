"""Code systems, identifier systems and extension URLs of our FHIR mapping, with their codes."""

from __future__ import annotations

from ..models import Sensitivity

CANONICAL = "https://fhir.virtual-hospital.example"
EXT = CANONICAL + "/StructureDefinition/"
SYS_USER = CANONICAL + "/sid/user"
SYS_PRESCRIPTION = CANONICAL + "/sid/prescription"
SYS_DEVICE = CANONICAL + "/sid/device"
SYS_DEVICE_KIND = CANONICAL + "/CodeSystem/device-kind"
SYS_REGISTRATION = CANONICAL + "/sid/registration"
SYS_ROLE = CANONICAL + "/CodeSystem/role"
SYS_DOCUMENT_CATEGORY = CANONICAL + "/CodeSystem/document-category"
SYS_AHV = "urn:oid:2.16.756.5.32"
SYS_INSURANCE_CARD = "urn:oid:2.16.756.5.30.1.123.100.1.1.1"
SYS_GLN = "urn:oid:2.51.1.3"
SYS_RPPS = "urn:oid:1.2.250.1.71.4.2.1"
UCUM = "http://unitsofmeasure.org"
BCP47 = "urn:ietf:bcp:47"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"
V3_ACT = TERMINOLOGY + "v3-ActCode"
V3_CONFIDENTIALITY = TERMINOLOGY + "v3-Confidentiality"
V3_INTERPRETATION = TERMINOLOGY + "v3-ObservationInterpretation"
NOTE_CATEGORY = "clinical-note"

REGISTRATION_SYSTEMS = {"gln": SYS_GLN, "rpps": SYS_RPPS, "other": SYS_REGISTRATION}
ROUTE_SNOMED: dict[str, tuple[str, str]] = {
    "oral": ("26643006", "Oral route"),
    "sublingual": ("37839007", "Sublingual route"),
    "inhaled": ("447694001", "Respiratory tract route"),
    "topical": ("6064005", "Topical route"),
    "subcutaneous": ("34206005", "Subcutaneous route"),
    "intramuscular": ("78421000", "Intramuscular route"),
    "intravenous": ("47625008", "Intravenous route"),
    "rectal": ("37161004", "Rectal route"),
}
NOTE_LOINC: dict[str, tuple[str, str]] = {
    "progress": ("11506-3", "Progress note"),
    "consultation": ("11488-4", "Consult note"),
    "telephone": ("34109-9", "Note"),
    "discharge": ("18842-5", "Discharge summary"),
}
DOCUMENT_LOINC: dict[str, tuple[str, str]] = {
    "report": ("11502-2", "Laboratory report"),
    "photo": ("72170-4", "Photographic image"),
    "letter": ("51852-2", "Letter"),
    "imaging": ("18748-4", "Diagnostic imaging study"),
    "consent": ("59284-0", "Consent Document"),
    "other": ("34109-9", "Note"),
}
ENCOUNTER_CLASS_DISPLAY = {
    "VR": "virtual",
    "AMB": "ambulatory",
    "HH": "home health",
    "IMP": "inpatient encounter",
}
INTERPRETATION_DISPLAY = {
    "N": "Normal",
    "L": "Low",
    "H": "High",
    "LL": "Critical low",
    "HH": "Critical high",
}
REPORT_CATEGORY_DISPLAY = {"LAB": "Laboratory", "RAD": "Radiology", "OTH": "Other"}
SENSITIVITY_ACT = {
    Sensitivity.MENTAL_HEALTH: "PSY",
    Sensitivity.SEXUAL_HEALTH: "SEX",
    Sensitivity.ADDICTION: "ETH",
}
# SNOMED CT device codes (physical object) of the device kinds that have a well-known one; every
# Device also carries its kind in SYS_DEVICE_KIND (apps.devices.models.DeviceKind).
DEVICE_SNOMED: dict[str, tuple[str, str]] = {
    "blood_pressure": ("258057004", "Non-invasive blood pressure monitor"),
    "glucometer": ("337414009", "Blood glucose meter"),
    "pulse_oximeter": ("448703006", "Pulse oximeter"),
    "scale": ("19892000", "Scale, device"),
}
# Device.property.type.text of the battery level (valueQuantity in %).
DEVICE_BATTERY = "battery"
