"""FHIR mapping of documents: DocumentReference, and ClinicalNote as a DocumentReference too
(told apart by the category `clinical-note`; ids never collide, being random UUIDs)."""

from __future__ import annotations

import base64
from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from ..models import ClinicalNote, CodeSystem, DocumentReference
from .codes import DOCUMENT_LOINC, NOTE_CATEGORY, NOTE_LOINC, SYS_DOCUMENT_CATEGORY
from .helpers import (
    _cc,
    _code,
    _datetime,
    _ext,
    _ext_value,
    _iso,
    _item,
    _item_fields,
    _need,
    _recorded_ext,
    _ref,
    _ref_id,
    _user_id,
    _user_ref,
)


def _document_url(pk: int) -> str | None:
    try:
        return settings.SITE_URL + reverse("records:document_download", args=[pk])
    except NoReverseMatch:  # the documents pages are not installed
        return None


def _document_to(d: DocumentReference) -> dict[str, Any]:
    code, display = DOCUMENT_LOINC[d.category]
    attachment = {
        "extension": [_ext("sha256", "valueString", d.sha256)],
        "contentType": d.content_type,
        "url": _document_url(d.pk),
        "size": d.size,
        "title": d.filename,
    }
    return _item(
        d,
        "DocumentReference",
        status=d.status,
        type=_cc(CodeSystem.LOINC, code, display),
        category=[_cc(SYS_DOCUMENT_CATEGORY, d.category)],
        date=_iso(d.recorded_at),
        author=[_user_ref(d.recorded_by)],
        description=d.title,
        content=[{"attachment": attachment}],
        context={"encounter": [_ref("Encounter", d.encounter)]},
    )


def _document_from(data: dict[str, Any]) -> DocumentReference:
    attachment = (data.get("content") or [{}])[0].get("attachment") or {}
    fields = _item_fields(data, DocumentReference)
    return DocumentReference(
        **fields,
        title=data.get("description", ""),
        category=_code((data.get("category") or [{}])[0], SYS_DOCUMENT_CATEGORY) or "other",
        status=data.get("status", "current"),
        content_type=attachment.get("contentType", ""),
        size=attachment.get("size", 0),
        sha256=_ext_value(attachment, "sha256") or "",
        filename=attachment.get("title", ""),
        encounter_id=_encounter_id(data, fields["patient_id"]),
        recorded_at=_datetime(data.get("date")) or timezone.now(),
        recorded_by_id=_user_id((data.get("author") or [None])[0]),
    )


def _note_to(n: ClinicalNote) -> dict[str, Any]:
    code, display = NOTE_LOINC[n.kind]
    replaces = None
    if n.amends_id is not None:
        replaces = {"code": "replaces", "target": _ref("DocumentReference", n.amends)}
    return _item(
        n,
        "DocumentReference",
        extension=[
            *_recorded_ext(n)[:1],
            _ext("signature", "valueString", n.signature),
            _ext("amendment-reason", "valueString", n.amendment_reason),
        ],
        status="superseded" if n.status == ClinicalNote.Status.AMENDED else "current",
        docStatus="amended" if n.amends_id is not None else "final",
        type=_cc(CodeSystem.LOINC, code, display),
        category=[_cc(SYS_DOCUMENT_CATEGORY, NOTE_CATEGORY)],
        date=_iso(n.signed_at),
        author=[_user_ref(n.recorded_by)],
        relatesTo=[replaces],
        description=n.title,
        content=[
            {
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "data": base64.b64encode(n.text.encode()).decode(),
                    "title": n.title,
                }
            }
        ],
        context={"encounter": [_ref("Encounter", n.encounter)]},
    )


def _note_from(data: dict[str, Any]) -> ClinicalNote:
    kinds = {code: kind for kind, (code, _display) in NOTE_LOINC.items()}
    attachment = (data.get("content") or [{}])[0].get("attachment") or {}
    replaces: dict[str, Any] = next(
        (r for r in data.get("relatesTo", []) if r.get("code") == "replaces"), {}
    )
    fields = _item_fields(data, ClinicalNote)
    amends = _ref_id(
        replaces.get("target"),
        "DocumentReference",
        model=ClinicalNote,
        patient_id=fields["patient_id"],
    )
    return ClinicalNote(
        **fields,
        recorded_at=_datetime(_ext_value(data, "recorded")) or timezone.now(),
        recorded_by_id=_user_id((data.get("author") or [None])[0]),
        kind=kinds.get(_code(data.get("type"), CodeSystem.LOINC), "progress"),
        title=data.get("description", ""),
        text=base64.b64decode(attachment.get("data", "")).decode(),
        status="amended" if data.get("status") == "superseded" else "current",
        signed_at=_need(_datetime(data.get("date")), "DocumentReference.date"),
        signature=_ext_value(data, "signature") or "",
        amends_id=amends,
        amendment_reason=_ext_value(data, "amendment-reason") or "",
        encounter_id=_encounter_id(data, fields["patient_id"]),
    )


def _encounter_id(data: dict[str, Any], patient_id: int) -> int | None:
    encounter = ((data.get("context") or {}).get("encounter") or [{}])[0]
    return _ref_id(encounter, "Encounter", patient_id=patient_id)
