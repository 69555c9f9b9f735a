"""Storing device messages in batches: verify, validate, dedupe, insert, dead-letter, audit.

One call handles a batch (an HTTP request, or what the MQTT ingestor pulled since its last
commit) in one transaction, so the caller acknowledges only what is committed. A message is
taken or rejected as a whole: storing part of it would make its redelivery ambiguous.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.models import CodeSystem, Concept, Observation, Source, interpret

from ..models import (
    DEAD_LETTER_RAW_BYTES,
    DEVICE_REF_LENGTH,
    DeadLetter,
    DeadLetterReason,
    Device,
    DeviceMessage,
)
from ..protocol import Message, ProtocolError, claimed_device, decode, device_id_from_topic
from ..units import MEASUREMENTS, UnitError, to_canonical
from . import thresholds
from .alerts import raise_alerts
from .live import push_readings

logger = logging.getLogger(__name__)

COUNTER_KEY = "devices:dead_letters:{reason}"
STORED = "stored"
DUPLICATE = "duplicate"
DEAD_LETTER = "dead_letter"
_INSERT_CHUNK = 5000  # rows per INSERT statement: 6 parameters each, far below PG's 65535


@dataclass(frozen=True)
class RawMessage:
    payload: bytes
    transport: str
    topic: str = ""
    received_at: dt.datetime = field(default_factory=timezone.now)


@dataclass(frozen=True)
class Outcome:
    """What became of one message of the batch, in input order."""

    status: str
    readings: int = 0
    reason: str = ""
    detail: str = ""


@dataclass
class IngestResult:
    stored: int = 0  # readings stored
    messages_stored: int = 0
    duplicates: int = 0  # messages already stored (redeliveries)
    dead_lettered: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    observation_ids: list[int] = field(default_factory=list)
    alerts: list[int] = field(default_factory=list)  # alerts raised (or raised again)
    outcomes: list[Outcome] = field(default_factory=list)


@dataclass
class _Accepted:
    index: int
    raw: RawMessage
    message: Message
    device: Device
    patient_pk: int
    values: list[tuple[Concept, Decimal, str]]


class _Batch:
    """The working state of one `ingest` call."""

    def __init__(self, messages: Sequence[RawMessage]) -> None:
        self.messages = messages
        self.outcomes: list[Outcome | None] = [None] * len(messages)
        self.dead: list[DeadLetter] = []
        self.reasons: Counter[str] = Counter()

    def reject(
        self, index: int, reason: str, detail: str, device: Device | None = None, ref: str = ""
    ) -> None:
        raw = self.messages[index]
        reason = str(reason)  # DeadLetterReason members and plain strings count alike
        self.outcomes[index] = Outcome(DEAD_LETTER, reason=reason, detail=detail)
        self.reasons[reason] += 1
        self.dead.append(
            DeadLetter(
                received_at=raw.received_at,
                transport=raw.transport,
                topic=raw.topic[:200],
                reason=reason,
                detail=detail[:500],
                device=device,
                device_ref=(device.device_id if device else ref)[:DEVICE_REF_LENGTH],
                raw=bytes(raw.payload[:DEAD_LETTER_RAW_BYTES]),
                size=len(raw.payload),
            )
        )


def _concepts() -> dict[str, Concept]:
    return {
        c.code: c
        for c in Concept.objects.filter(system=CodeSystem.LOINC, code__in=list(MEASUREMENTS))
    }


def _check_message(
    message: Message, device: Device, raw: RawMessage, concepts: dict[str, Concept]
) -> tuple[int, list[tuple[Concept, Decimal, str]]]:
    """The patient and the readings in canonical units; ProtocolError when not storable."""
    ref = device.device_id
    if raw.transport == "mqtt" and device_id_from_topic(raw.topic) != ref:
        raise ProtocolError(
            DeadLetterReason.TOPIC_MISMATCH, f"topic {raw.topic[:100]!r} is not {ref}'s", ref
        )
    if device.status == Device.Status.RETIRED:
        raise ProtocolError(DeadLetterReason.RETIRED_DEVICE, f"device {ref} is retired", ref)
    patient_pk = device.patient_id
    if patient_pk is None:
        raise ProtocolError(
            DeadLetterReason.UNASSIGNED_DEVICE, f"device {ref} is not assigned to a patient", ref
        )
    ahead = dt.timedelta(minutes=settings.DEVICES_MAX_FUTURE_MINUTES)
    if message.measured_at > raw.received_at + ahead:
        raise ProtocolError(
            DeadLetterReason.FUTURE_TIME,
            f"ts {message.measured_at.isoformat()} is more than "
            f"{settings.DEVICES_MAX_FUTURE_MINUTES} min after reception (device clock?)",
            ref,
        )
    if message.measured_at < raw.received_at - dt.timedelta(days=settings.DEVICES_MAX_AGE_DAYS):
        raise ProtocolError(
            DeadLetterReason.TOO_OLD,
            f"ts {message.measured_at.isoformat()} is older than "
            f"{settings.DEVICES_MAX_AGE_DAYS} days",
            ref,
        )
    values = []
    for position, reading in enumerate(message.readings):
        try:
            value, unit = to_canonical(reading.code, reading.value, reading.unit)
        except UnitError as exc:
            raise ProtocolError(exc.reason, f"obs[{position}]: {exc.detail}", ref) from None
        concept = concepts.get(reading.code)
        if concept is None:
            raise ProtocolError(
                DeadLetterReason.UNKNOWN_CODE,
                f"obs[{position}]: code {reading.code} is not in the reference data "
                "(run load_reference_data)",
                ref,
            )
        values.append((concept, value, unit))
    return patient_pk, values


def _parse(batch: _Batch) -> list[_Accepted]:
    """Verify and validate every message; rejected ones go to `batch.dead`."""
    claimed: dict[int, str] = {}
    limit = settings.DEVICES_MAX_PAYLOAD_BYTES
    for index, raw in enumerate(batch.messages):
        if len(raw.payload) > limit:
            ref = device_id_from_topic(raw.topic) or ""
            detail = f"payload of {len(raw.payload)}+ bytes; the limit is {limit} bytes"
            batch.reject(index, DeadLetterReason.OVERSIZED, detail, ref=ref)
            continue
        try:
            claimed[index] = claimed_device(raw.payload)
        except ProtocolError as exc:
            batch.reject(index, exc.reason, exc.detail, ref=device_id_from_topic(raw.topic) or "")
    devices = {d.device_id: d for d in Device.objects.filter(device_id__in=set(claimed.values()))}
    concepts = _concepts() if devices else {}
    accepted = []
    for index, ref in claimed.items():
        raw = batch.messages[index]
        device = devices.get(ref)
        try:
            message = decode(
                raw.payload,
                lambda kid: devices[kid].secret if kid in devices else None,
                settings.DEVICES_MAX_READINGS_PER_MESSAGE,
            )
            device = devices[message.device_id]  # decode refused unknown devices
            patient_pk, values = _check_message(message, device, raw, concepts)
        except ProtocolError as exc:
            batch.reject(index, exc.reason, exc.detail, device=device, ref=exc.device_ref or ref)
            continue
        accepted.append(_Accepted(index, raw, message, device, patient_pk, values))
    return accepted


def _insert_new_messages(rows: list[_Accepted]) -> set[tuple[int, str]]:
    """INSERT … ON CONFLICT DO NOTHING; the (device pk, message id) keys actually inserted."""
    table = connection.ops.quote_name(DeviceMessage._meta.db_table)
    inserted: set[tuple[int, str]] = set()
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        params: list[Any] = []
        for row in chunk:
            params += [
                row.device.pk,
                row.message.message_id,
                row.message.measured_at,
                row.raw.received_at,
                len(row.values),
                row.raw.transport,
            ]
        values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
        sql = (
            f"INSERT INTO {table} "  # noqa: S608 - only the table name is interpolated
            "(device_id, message_id, measured_at, received_at, readings, transport) "
            f"VALUES {values} ON CONFLICT (device_id, message_id) DO NOTHING "
            "RETURNING device_id, message_id"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            inserted.update((device_pk, message_id) for device_pk, message_id in cursor.fetchall())
    return inserted


def _observations(rows: list[_Accepted]) -> list[Observation]:
    built = []
    for row in rows:
        for concept, value, unit in row.values:
            built.append(
                Observation(
                    patient_id=row.patient_pk,
                    code=concept,
                    category=Observation.Category.VITAL_SIGNS
                    if concept.category == "vital-signs"
                    else Observation.Category.LABORATORY,
                    value=value,
                    unit=unit,
                    ref_low=concept.low,
                    ref_high=concept.high,
                    # bulk_create skips Observation.save, which would set it.
                    interpretation=interpret(value, concept.low, concept.high),
                    effective_at=row.message.measured_at,
                    recorded_at=row.raw.received_at,
                    source=Source.DEVICE,
                    device_id=row.device.device_id,
                )
            )
    return built


def _touch_devices(rows: list[_Accepted]) -> None:
    """Last seen / last reading / battery; telemetry, so the FHIR version stays the same."""
    latest: dict[int, _Accepted] = {}
    seen: dict[int, dt.datetime] = {}
    for row in rows:
        pk = row.device.pk
        if pk not in latest or row.message.measured_at >= latest[pk].message.measured_at:
            latest[pk] = row
        seen[pk] = max(seen.get(pk, row.raw.received_at), row.raw.received_at)
    for pk, row in latest.items():
        changes: dict[str, Any] = {
            # Greatest: another ingestor may have committed a later reading meanwhile.
            "last_seen_at": Greatest(Coalesce(F("last_seen_at"), seen[pk]), seen[pk]),
            "last_reading_at": Greatest(
                Coalesce(F("last_reading_at"), row.message.measured_at), row.message.measured_at
            ),
        }
        if row.message.battery is not None:
            changes["battery"] = row.message.battery
        Device.objects.filter(pk=pk).update(**changes)


def _audit(rows: list[_Accepted], observations: list[Observation]) -> None:
    """One audit row per patient for the batch (the chain lock makes per-reading rows costly)."""
    per_patient: dict[int, Counter[str]] = {}
    for obs in observations:
        per_patient.setdefault(obs.patient_id, Counter())[obs.device_id] += 1
    transports = {row.raw.transport for row in rows}
    for patient_pk, devices in per_patient.items():
        audit(
            Action.CREATE,
            object_type="devices.reading",
            object_id=",".join(sorted(devices))[:100],
            patient_id=str(patient_pk),
            detail={
                "observations": sum(devices.values()),
                "devices": dict(devices),
                "transport": sorted(transports),
            },
        )


def _count(reasons: Counter[str]) -> None:
    for reason, n in reasons.items():
        key = COUNTER_KEY.format(reason=reason)
        cache.add(key, 0, timeout=None)
        try:
            cache.incr(key, n)
        except ValueError:  # evicted between add and incr
            cache.set(key, n, timeout=None)


def dead_letter_totals() -> dict[str, int]:
    """Running dead-letter counts per reason, from the cache (for dashboards)."""
    keys = {COUNTER_KEY.format(reason=r): r for r in DeadLetterReason.values}
    return {keys[k]: int(v) for k, v in cache.get_many(list(keys)).items()}


def ingest(messages: Sequence[RawMessage]) -> IngestResult:
    """Store a batch of device messages in one transaction; see the module docstring."""
    batch = _Batch(messages)
    result = IngestResult()
    with transaction.atomic():
        accepted = _parse(batch)
        unique: list[_Accepted] = []
        keys: set[tuple[int, str]] = set()
        for row in accepted:
            key = (row.device.pk, row.message.message_id)
            if key in keys:  # the same message twice in one batch
                batch.outcomes[row.index] = Outcome(DUPLICATE)
                continue
            keys.add(key)
            unique.append(row)
        inserted = _insert_new_messages(unique) if unique else set()
        new = []
        for row in unique:
            if (row.device.pk, row.message.message_id) in inserted:
                new.append(row)
                batch.outcomes[row.index] = Outcome(STORED, readings=len(row.values))
            else:
                batch.outcomes[row.index] = Outcome(DUPLICATE)
        observations = Observation.objects.bulk_create(_observations(new))
        if new:
            _touch_devices(new)
            _audit(new, observations)
            # Before the commit, so no reading is acknowledged without its alert.
            concept_codes = {o.code_id: o.code.code for o in observations}
            evaluation = thresholds.evaluate(observations, concept_codes)
            # Readings first: a dashboard shows the value, then the alert about it.
            push_readings(observations, concept_codes, evaluation.rules)
            result.alerts = [alert.pk for alert in raise_alerts(evaluation)]
        DeadLetter.objects.bulk_create(batch.dead)
        reasons = batch.reasons
        transaction.on_commit(lambda: _count(reasons))
    result.outcomes = [o for o in batch.outcomes if o is not None]
    result.observation_ids = [o.pk for o in observations]
    result.stored = len(observations)
    result.messages_stored = len(new)
    result.duplicates = sum(1 for o in result.outcomes if o.status == DUPLICATE)
    result.dead_lettered = len(batch.dead)
    result.reasons = batch.reasons
    if batch.reasons:
        logger.warning("device messages dead-lettered: %s", dict(batch.reasons))
    return result
