"""NDJSON lines for many rows at once, without model instances (Bulk Data `$export`).

`to_fhir` maps one model instance and then drops the empty elements of the whole tree. For the
high-volume types, `batch_lines(queryset, block_size)` instead reads plain column tuples from
the queryset (its filters, i.e. the caller's view, kept), resolves the rows they point to once
per run (people, codes) or once per block (observation notes, devices), builds each resource
without empty elements and serializes it with orjson. Lines equal `to_fhir`'s resources, parsed
(tests/records/test_fhir_batch.py); other models keep `to_fhir` through `dumps_line`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any

import orjson
from django.db import connection, models
from django.db.models import CharField, Exists, F, OuterRef
from django.db.models.functions import Cast

from apps.accounts.models import User
from apps.devices.models import Device

from ..models import Concept, Condition, Encounter, Observation, ObservationNote
from .clinical import (
    SECONDARY_PERFORMER,
    EncounterExtras,
    device_reference,
    encounter_extras,
    extra_participants,
    minutes_duration,
)
from .codes import (
    ENCOUNTER_CLASS_DISPLAY,
    EXT,
    INTERPRETATION_DISPLAY,
    TERMINOLOGY,
    UCUM,
    V3_ACT,
    V3_INTERPRETATION,
)
from .helpers import _cc, _clean, _coding, _concept, _ext, _security, _user_ref

# orjson writes datetimes its own way: hand them to `str`, as json.dumps(default=str) did.
LINE_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME
Fragment = dict[str, Any]
MAX_CACHED = 10_000
Serializer = Callable[[models.QuerySet[Any], int], Iterator[list[bytes]]]


def dumps_line(resource: dict[str, Any]) -> bytes:
    """One NDJSON line (UTF-8, compact, newline-terminated)."""
    return orjson.dumps(resource, default=str, option=LINE_OPTIONS)


def _text(path: str) -> Cast:
    """A column as PostgreSQL prints it (no uuid.UUID or datetime object per row)."""
    return Cast(path, output_field=CharField())


def _instant(text: str | None) -> str | None:
    """A timestamptz read as text (ISO DateStyle, UTC session) as `datetime.isoformat()`.

    PostgreSQL prints "2026-03-01 10:00:00.1234+00", the fraction's trailing zeros dropped;
    Python "2026-03-01T10:00:00.123400+00:00". Reading text skips psycopg's timestamp loader,
    written in Python, which cost more than the rest of the line.
    """
    if text is None:
        return None
    if len(text) == 29 and text[10] == " " and text[26:] == "+00":  # the common case: 6 digits
        return f"{text[:10]}T{text[11:26]}+00:00"
    if text[10:11] != " " or text[-3:] != "+00":
        raise ValueError(f"unexpected timestamp text {text!r}: DateStyle ISO and UTC expected")
    clock = text[11:-3]
    if len(clock) > 8:
        clock = clock.ljust(15, "0")
    return f"{text[:10]}T{clock}+00:00"


def _number(text: str) -> int | float:
    """A numeric column read as text, as `helpers._number` gives the Decimal: int when whole."""
    # float() of the text rounds correctly, exactly as float() of the Decimal does.
    value = float(text)
    return int(value) if value.is_integer() else value


class _Related:
    """Cleaned fragments of the rows many resources point to, built once per run."""

    def __init__(self) -> None:
        self.users: dict[int, Fragment] = {}
        self.concepts: dict[int, Fragment] = {}
        self.security: dict[str, list[Fragment]] = {}
        self.devices: dict[str, Fragment] = {}

    def load_users(self, ids: Iterable[int | None]) -> None:
        missing = {pk for pk in ids if pk is not None and pk not in self.users}
        if missing:
            people = User.objects.filter(pk__in=missing).select_related("practitioner")
            for user in people:
                self.users[user.pk] = _clean(_user_ref(user))

    def load_concepts(self, ids: Iterable[int]) -> None:
        missing = {pk for pk in ids if pk not in self.concepts}
        if missing:
            for concept in Concept.objects.filter(pk__in=missing):
                self.concepts[concept.pk] = _clean(_concept(concept))

    def load_devices(self, device_ids: Iterable[str]) -> None:
        """`Observation.device` of these device ids (an unknown one: the identifier only)."""
        wanted = {d for d in device_ids if d}
        if len(self.devices) >= MAX_CACHED:
            self.devices.clear()
        missing = wanted - self.devices.keys()
        if not missing:
            return
        known = dict(
            Device.objects.filter(device_id__in=missing).values_list("device_id", "fhir_id")
        )
        for device_id in missing:
            self.devices[device_id] = _clean(device_reference(device_id, known.get(device_id)))

    def meta_security(self, sensitivity: str) -> list[Fragment]:
        found = self.security.get(sensitivity)
        if found is None:
            found = self.security[sensitivity] = _clean(_security(sensitivity))
        return found


def _plain(queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
    """The same rows without ordering or related loading (tuples cannot take prefetches)."""
    return queryset.order_by().select_related(None).prefetch_related(None)


def _blocks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    while block := list(islice(rows, size)):
        yield block


# ---------------------------------------------------------------------------------------------
# Observation

_OBSERVATION_COLUMNS = (
    F("pk"),
    _text("fhir_id"),
    F("version"),
    _text("updated_at"),
    _text("patient__fhir_id"),
    F("sensitivity"),
    F("recorded_by_id"),
    _text("recorded_at"),
    F("code_id"),
    F("category"),
    F("status"),
    _text("value"),
    F("unit"),
    _text("ref_low"),
    _text("ref_high"),
    F("interpretation"),
    _text("effective_at"),
    F("source"),
    F("device_id"),
    _text("report__fhir_id"),
    _text("encounter__fhir_id"),
    Exists(ObservationNote.objects.filter(observation=OuterRef("pk"))),
)
_REPORT_URL = EXT + "report"


def _quantity(value: str, unit: str) -> Fragment:
    if unit:
        return {"value": _number(value), "unit": unit, "system": UCUM, "code": unit}
    return {"value": _number(value), "system": UCUM}


def _reference_range(low: str | None, high: str | None, unit: str) -> list[Fragment]:
    """`referenceRange`, or [] when there is none; a code's few ranges repeat on every row."""
    reference_range: Fragment = {}
    if low is not None:
        reference_range["low"] = _quantity(low, unit)
    if high is not None:
        reference_range["high"] = _quantity(high, unit)
    return [reference_range] if reference_range else []


def _memo(cache: dict[str, Any], key: str, make: Callable[[str], Any]) -> Any:
    """`make(key)` cleaned, built once per run: these elements repeat from row to row."""
    found = cache.get(key)
    if found is None:
        found = cache[key] = _clean(make(key))
    return found


def _source_extension(source: str) -> Fragment | None:
    return _ext("observation-source", "valueCode", source)


def _category(category: str) -> list[Fragment | None]:
    return [_cc(TERMINOLOGY + "observation-category", category)]


def _interpretation(code: str) -> list[Fragment | None]:
    return [_cc(V3_INTERPRETATION, code, INTERPRETATION_DISPLAY.get(code))]


def _observation_notes(pks: list[int], related: _Related) -> dict[int, list[Fragment]]:
    """Each observation's `note` elements, in the order `to_fhir` lists them."""
    rows = list(
        ObservationNote.objects.filter(observation_id__in=pks)
        .order_by("observation_id", "created_at", "pk")
        .values_list("observation_id", "pk", "author_id", "created_at", "text")
    )
    related.load_users(row[2] for row in rows)
    notes: dict[int, list[Fragment]] = {}
    for observation_id, pk, author_id, created_at, text in rows:
        note: Fragment = {"id": str(pk)}
        if (author := related.users.get(author_id)) is not None:
            note["authorReference"] = author
        note["time"] = created_at.isoformat()
        if text:
            note["text"] = text
        notes.setdefault(observation_id, []).append(note)
    return notes


def observation_lines(queryset: models.QuerySet[Any], block_size: int) -> Iterator[list[bytes]]:
    """NDJSON lines of the queryset's observations, `block_size` rows per list."""
    related = _Related()
    categories: dict[str, Any] = {}
    interpretations: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    ranges: dict[tuple[str | None, str | None, str], list[Fragment]] = {}
    security = related.security
    rows = _plain(queryset).values_list(*_OBSERVATION_COLUMNS)
    for block in _blocks(rows.iterator(chunk_size=block_size), block_size):
        related.load_users(row[6] for row in block)
        related.load_concepts(row[8] for row in block)
        related.load_devices(row[18] for row in block)
        annotated = [row[0] for row in block if row[-1]]
        notes = _observation_notes(annotated, related) if annotated else {}
        users, concepts, devices = related.users, related.concepts, related.devices
        lines = []
        for (
            pk,
            fhir_id,
            version,
            updated_at,
            patient,
            sensitivity,
            recorded_by,
            recorded_at,
            code,
            category,
            status,
            value,
            unit,
            low,
            high,
            interpretation,
            effective_at,
            source,
            device,
            report,
            encounter,
            _annotated,
        ) in block:
            resource: Fragment = {
                "resourceType": "Observation",
                "id": fhir_id,
                "meta": {
                    "versionId": str(version),
                    "lastUpdated": _instant(updated_at),
                    "security": security.get(sensitivity) or related.meta_security(sensitivity),
                },
            }
            extension: list[Fragment] = []
            if source:
                extension.append(_memo(sources, source, _source_extension))
            if report:
                extension.append(
                    {
                        "url": _REPORT_URL,
                        "valueReference": {"reference": f"DiagnosticReport/{report}"},
                    }
                )
            if extension:
                resource["extension"] = extension
            resource["subject"] = {"reference": f"Patient/{patient}"}
            if status:
                resource["status"] = status
            if category:
                resource["category"] = _memo(categories, category, _category)
            if concept := concepts.get(code):
                resource["code"] = concept
            if encounter:
                resource["encounter"] = {"reference": f"Encounter/{encounter}"}
            if effective_at is not None:
                resource["effectiveDateTime"] = _instant(effective_at)
            if recorded_at is not None:
                resource["issued"] = _instant(recorded_at)
            if recorded_by is not None:
                resource["performer"] = [users[recorded_by]]
            if value is not None:
                resource["valueQuantity"] = _quantity(value, unit)
            if interpretation:
                resource["interpretation"] = _memo(interpretations, interpretation, _interpretation)
            if pk in notes:
                resource["note"] = notes[pk]
            if device:
                resource["device"] = devices[device]
            if low is not None or high is not None:
                key = (low, high, unit)
                reference_range = ranges.get(key)
                if reference_range is None:
                    if len(ranges) >= MAX_CACHED:  # ranges of their own per row: keep memory flat
                        ranges.clear()
                    reference_range = ranges[key] = _reference_range(low, high, unit)
                resource["referenceRange"] = reference_range
            lines.append(orjson.dumps(resource, option=LINE_OPTIONS))
        yield lines


# ---------------------------------------------------------------------------------------------
# Encounter and Condition

# Columns every clinical item starts with, as `_head` and `_Related` read them.
_ITEM_COLUMNS = (
    _text("fhir_id"),
    F("version"),
    _text("updated_at"),
    _text("patient__fhir_id"),
    F("sensitivity"),
    F("recorded_by_id"),
    _text("recorded_at"),
)
_RECORDED_URL = EXT + "recorded"
_RECORDER_URL = EXT + "recorder"
_PRIMARY_PERFORMER = _clean(
    [_cc(TERMINOLOGY + "v3-ParticipationType", "PPRF", "primary performer")]
)
_SECONDARY_PERFORMER = _clean([_cc(*SECONDARY_PERFORMER)])
_NO_EXTRAS = EncounterExtras()
_PROBLEM_LIST = _clean(
    [_cc(TERMINOLOGY + "condition-category", "problem-list-item", "Problem List Item")]
)


def _head(resource_type: str, row: tuple[Any, ...], related: _Related) -> Fragment:
    """resourceType, id and meta of a row starting with `_ITEM_COLUMNS`."""
    return {
        "resourceType": resource_type,
        "id": row[0],
        "meta": {
            "versionId": str(row[1]),
            "lastUpdated": _instant(row[2]),
            "security": related.meta_security(row[4]),
        },
    }


def _encounter_class(kind: str) -> Fragment | None:
    return _coding(V3_ACT, kind, ENCOUNTER_CLASS_DISPLAY.get(kind))


def _clinical_status(code: str) -> Fragment | None:
    return _cc(TERMINOLOGY + "condition-clinical", code)


def _verification_status(code: str) -> Fragment | None:
    return _cc(TERMINOLOGY + "condition-ver-status", code)


def encounter_lines(queryset: models.QuerySet[Any], block_size: int) -> Iterator[list[bytes]]:
    """NDJSON lines of the queryset's encounters, `block_size` rows per list."""
    related = _Related()
    classes: dict[str, Any] = {}
    columns = (
        *_ITEM_COLUMNS,
        F("status"),
        F("kind"),
        F("reason"),
        F("practitioner_id"),
        _text("started_at"),
        _text("ended_at"),
        F("pk"),
    )
    rows = _plain(queryset).values_list(*columns)
    for block in _blocks(rows.iterator(chunk_size=block_size), block_size):
        # What other apps know of these encounters (teleconsult: the call), once per block.
        extras = encounter_extras([row[-1] for row in block])
        others = {
            row[-1]: extra_participants(extras[row[-1]], row[10])
            for row in block
            if row[-1] in extras
        }
        related.load_users(
            [
                *(row[5] for row in block),
                *(row[10] for row in block),
                *(pk for people in others.values() for pk in people),
            ]
        )
        lines = []
        for row in block:
            patient, recorded_by, recorded_at = row[3], row[5], row[6]
            status, kind, reason, practitioner, started_at, ended_at, pk = row[7:]
            extra = extras.get(pk, _NO_EXTRAS)
            resource = _head("Encounter", row, related)
            extension: list[Fragment] = []
            if recorded_at is not None:
                extension.append({"url": _RECORDED_URL, "valueDateTime": _instant(recorded_at)})
            if recorded_by is not None:
                extension.append(
                    {"url": _RECORDER_URL, "valueReference": related.users[recorded_by]}
                )
            if extension:
                resource["extension"] = extension
            resource["subject"] = {"reference": f"Patient/{patient}"}
            if status:
                resource["status"] = status
            if kind:
                resource["class"] = _memo(classes, kind, _encounter_class)
            participants: list[Fragment] = []
            if practitioner is not None:
                participants.append(
                    {"type": _PRIMARY_PERFORMER, "individual": related.users[practitioner]}
                )
            for person in others.get(pk, ()):
                participant: Fragment = {"type": _SECONDARY_PERFORMER}
                if (individual := related.users.get(person)) is not None:
                    participant["individual"] = individual
                participants.append(participant)
            if participants:
                resource["participant"] = participants
            if extra.appointment:
                resource["appointment"] = [{"reference": f"Appointment/{extra.appointment}"}]
            period: Fragment = {}
            if started_at is not None:
                period["start"] = _instant(started_at)
            if ended_at is not None:
                period["end"] = _instant(ended_at)
            if period:
                resource["period"] = period
            if extra.minutes is not None:
                resource["length"] = minutes_duration(extra.minutes)
            if reason:
                resource["reasonCode"] = [{"text": reason}]
            lines.append(orjson.dumps(resource, option=LINE_OPTIONS))
        yield lines


def condition_lines(queryset: models.QuerySet[Any], block_size: int) -> Iterator[list[bytes]]:
    """NDJSON lines of the queryset's conditions, `block_size` rows per list."""
    related = _Related()
    clinical: dict[str, Any] = {}
    verification: dict[str, Any] = {}
    columns = (
        *_ITEM_COLUMNS,
        F("clinical_status"),
        F("verification_status"),
        F("code_id"),
        _text("encounter__fhir_id"),
        _text("onset_date"),  # dates print as isoformat() does under DateStyle ISO
        _text("abatement_date"),
        F("note"),
    )
    rows = _plain(queryset).values_list(*columns)
    for block in _blocks(rows.iterator(chunk_size=block_size), block_size):
        related.load_users(row[5] for row in block)
        related.load_concepts(row[9] for row in block)
        lines = []
        for row in block:
            patient, recorded_by, recorded_at = row[3], row[5], row[6]
            clinical_status, verification_status, code, encounter, onset, abatement, note = row[7:]
            resource = _head("Condition", row, related)
            resource["subject"] = {"reference": f"Patient/{patient}"}
            if clinical_status:
                resource["clinicalStatus"] = _memo(clinical, clinical_status, _clinical_status)
            if verification_status:
                resource["verificationStatus"] = _memo(
                    verification, verification_status, _verification_status
                )
            resource["category"] = _PROBLEM_LIST
            if concept := related.concepts.get(code):
                resource["code"] = concept
            if encounter is not None:
                resource["encounter"] = {"reference": f"Encounter/{encounter}"}
            if onset is not None:
                resource["onsetDateTime"] = onset
            if abatement is not None:
                resource["abatementDateTime"] = abatement
            if recorded_at is not None:
                resource["recordedDate"] = _instant(recorded_at)
            if recorded_by is not None:
                resource["recorder"] = related.users[recorded_by]
            if note:
                resource["note"] = [{"text": note}]
            lines.append(orjson.dumps(resource, option=LINE_OPTIONS))
        yield lines


SERIALIZERS: dict[type[models.Model], Serializer] = {
    Observation: observation_lines,
    Encounter: encounter_lines,
    Condition: condition_lines,
}


def batch_lines(model: type[models.Model]) -> Serializer | None:
    """The batch serializer of `model`, None when its rows go through `to_fhir` one by one.

    Only on PostgreSQL with the session in UTC (Django's default with USE_TZ) and DateStyle ISO,
    where `_instant` gives times exactly as `to_fhir` does.
    """
    if connection.vendor != "postgresql" or connection.timezone_name != "UTC":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SHOW DateStyle")
        if not str(cursor.fetchone()[0]).upper().startswith("ISO"):
            return None
    return SERIALIZERS.get(model)
