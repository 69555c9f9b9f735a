"""FHIR mapping of organisations and people: Organization, Patient, Practitioner,
PractitionerRole and CareTeam."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from apps.accounts.models import Organization

from ..models import CareTeam, CodeSystem, Patient, Practitioner, PractitionerRole
from .codes import (
    BCP47,
    REGISTRATION_SYSTEMS,
    SYS_AHV,
    SYS_GLN,
    SYS_INSURANCE_CARD,
    SYS_ROLE,
    SYS_USER,
)
from .helpers import (
    FhirError,
    _cc,
    _clean,
    _code,
    _coding,
    _date,
    _datetime,
    _element_pk,
    _ext,
    _ext_value,
    _identifier,
    _identity,
    _iso,
    _need,
    _period,
    _ref,
    _ref_id,
    _resource,
    _telecom,
    _user_id,
    _user_ref,
)


def _organization_to(org: Organization) -> dict[str, Any]:
    return _clean(
        {
            **_resource(org, "Organization"),
            "identifier": [{"system": SYS_GLN, "value": org.gln}] if org.gln else [],
            "active": True,
            "name": org.name,
            "telecom": [
                {"system": "phone", "value": org.phone} if org.phone else None,
                {"system": "email", "value": org.email} if org.email else None,
            ],
            "address": [{"text": org.address}],
        }
    )


def _organization_from(data: dict[str, Any]) -> Organization:
    return Organization(
        **_identity(data, Organization),
        name=data.get("name", ""),
        gln=_identifier(data, SYS_GLN).get("value", ""),
        address=(data.get("address") or [{}])[0].get("text", ""),
        phone=_telecom(data, "phone"),
        email=_telecom(data, "email"),
    )


def _patient_to(p: Patient) -> dict[str, Any]:
    card = None
    if p.insurance_card_number or p.insurer_name or p.insurer_gln:
        card = {
            "system": SYS_INSURANCE_CARD,
            "value": p.insurance_card_number,
            "assigner": {
                "identifier": {"system": SYS_GLN, "value": p.insurer_gln}
                if p.insurer_gln
                else None,
                "display": p.insurer_name,
            },
        }
    contact = None
    if p.contact_name or p.contact_phone:
        contact = {
            "relationship": [{"text": p.contact_relationship}],
            "name": {"text": p.contact_name},
            "telecom": [{"system": "phone", "value": p.contact_phone}] if p.contact_phone else [],
        }
    return _clean(
        {
            **_resource(p, "Patient"),
            "identifier": [
                {"system": SYS_AHV, "value": p.ahv_number} if p.ahv_number else None,
                card,
            ],
            "active": p.active,
            "name": [{"use": "official", "family": p.family_name, "given": p.given_names.split()}],
            "telecom": [
                {"system": "phone", "value": p.phone} if p.phone else None,
                {"system": "email", "value": p.email} if p.email else None,
            ],
            "gender": p.sex,
            "birthDate": _iso(p.birth_date),
            "address": [
                {
                    "line": [p.address_line],
                    "city": p.city,
                    "postalCode": p.postal_code,
                    "country": p.country,
                }
            ],
            "contact": [contact],
            "communication": [
                {
                    "language": {"coding": [{"system": BCP47, "code": p.preferred_language}]},
                    "preferred": True,
                }
            ],
            "managingOrganization": _ref("Organization", p.organization),
        }
    )


def _patient_from(data: dict[str, Any]) -> Patient:
    name = (data.get("name") or [{}])[0]
    address = (data.get("address") or [{}])[0]
    contact = (data.get("contact") or [{}])[0]
    card = _identifier(data, SYS_INSURANCE_CARD)
    assigner = card.get("assigner") or {}
    language = (data.get("communication") or [{}])[0].get("language")
    return Patient(
        **_identity(data, Patient),
        organization_id=_ref_id(data.get("managingOrganization"), "Organization"),
        family_name=name.get("family", ""),
        given_names=" ".join(name.get("given", [])),
        birth_date=_need(_date(data.get("birthDate")), "Patient.birthDate"),
        sex=data.get("gender", "unknown"),
        ahv_number=_identifier(data, SYS_AHV).get("value", ""),
        insurance_card_number=card.get("value", ""),
        insurer_name=assigner.get("display", ""),
        insurer_gln=(assigner.get("identifier") or {}).get("value", ""),
        phone=_telecom(data, "phone"),
        email=_telecom(data, "email"),
        address_line=" ".join(address.get("line", [])),
        postal_code=address.get("postalCode", ""),
        city=address.get("city", ""),
        country=address.get("country", "CH"),
        preferred_language=_code(language, BCP47) or "fr",
        contact_name=(contact.get("name") or {}).get("text", ""),
        contact_relationship=(contact.get("relationship") or [{}])[0].get("text", ""),
        contact_phone=_telecom(contact, "phone"),
        active=data.get("active", True),
    )


def _practitioner_to(p: Practitioner) -> dict[str, Any]:
    user = p.user
    return _clean(
        {
            **_resource(p, "Practitioner"),
            "identifier": [
                {
                    "system": REGISTRATION_SYSTEMS[p.registration_system],
                    "value": p.registration_number,
                },
                {"system": SYS_USER, "value": str(user.pk)},
            ],
            "active": user.is_active,
            "name": [{"family": user.last_name, "given": user.first_name.split()}],
            "qualification": [{"code": {"text": p.qualification}}] if p.qualification else [],
        }
    )


def _practitioner_from(data: dict[str, Any]) -> Practitioner:
    system, number = "other", ""
    for key, url in REGISTRATION_SYSTEMS.items():
        if value := _identifier(data, url).get("value"):
            system, number = key, value
            break
    user = str(_need(_identifier(data, SYS_USER).get("value"), "Practitioner.identifier (account)"))
    if not user.isdigit():
        raise FhirError(f"Unknown account {user!r} in Practitioner.identifier")
    return Practitioner(
        **_identity(data, Practitioner),
        user_id=int(user),
        registration_system=system,
        registration_number=number,
        qualification=((data.get("qualification") or [{}])[0].get("code") or {}).get("text", ""),
    )


def _role_to(role: PractitionerRole) -> dict[str, Any]:
    specialty = None
    if role.specialty_code or role.specialty_display:
        specialty = {
            "coding": [_coding(CodeSystem.SNOMED, role.specialty_code, role.specialty_display)],
            "text": role.specialty_display,
        }
    return _clean(
        {
            **_resource(role, "PractitionerRole"),
            "active": role.active,
            "period": _period(role.period_start, role.period_end),
            "practitioner": _ref("Practitioner", role.practitioner),
            "organization": _ref("Organization", role.organization),
            "code": [_cc(SYS_ROLE, role.code)],
            "specialty": [specialty],
        }
    )


def _role_from(data: dict[str, Any]) -> PractitionerRole:
    specialty = (data.get("specialty") or [{}])[0]
    period = data.get("period") or {}
    return PractitionerRole(
        **_identity(data, PractitionerRole),
        practitioner_id=_need(_ref_id(data.get("practitioner"), "Practitioner"), "practitioner"),
        organization_id=_need(_ref_id(data.get("organization"), "Organization"), "organization"),
        code=_code((data.get("code") or [{}])[0], SYS_ROLE),
        specialty_code=_code(specialty, CodeSystem.SNOMED),
        specialty_display=specialty.get("text", ""),
        active=data.get("active", True),
        period_start=_date(period.get("start")) or timezone.localdate(),
        period_end=_date(period.get("end")),
    )


def _care_team_to(team: CareTeam) -> dict[str, Any]:
    participants = [
        {
            "id": str(member.pk),
            "extension": [_ext("lead", "valueBoolean", member.is_lead)],
            "role": [_cc(SYS_ROLE, member.role)],
            "member": _user_ref(member.user),
            "period": _period(member.started_at, member.ended_at),
        }
        for member in sorted(team.members.all(), key=lambda m: m.pk)
    ]
    return _clean(
        {
            **_resource(team, "CareTeam"),
            "status": "active" if team.active else "inactive",
            "name": team.name,
            "subject": _ref("Patient", team.patient),
            "period": {"start": _iso(team.created_at)},
            "participant": participants,
            "managingOrganization": [_ref("Organization", team.organization)],
        }
    )


def _care_team_from(data: dict[str, Any]) -> dict[str, Any]:
    members = []
    for participant in data.get("participant", []):
        period = participant.get("period") or {}
        members.append(
            {
                "id": _element_pk(participant),
                "user_id": _user_id(participant.get("member")),
                "role": _code((participant.get("role") or [{}])[0], SYS_ROLE),
                "is_lead": bool(_ext_value(participant, "lead")),
                "started_at": _datetime(period.get("start")),
                "ended_at": _datetime(period.get("end")),
            }
        )
    patient_id = _ref_id(data.get("subject"), "Patient")
    if patient_id is None:
        raise FhirError("CareTeam without a patient")
    return {
        **_identity(data, CareTeam),
        "patient_id": patient_id,
        "name": data.get("name", ""),
        "active": data.get("status") == "active",
        "organization_id": _ref_id((data.get("managingOrganization") or [{}])[0], "Organization"),
        "created_at": _datetime((data.get("period") or {}).get("start")),
        "members": members,
    }
