"""Storing device messages in batches: verify, validate, dedupe, insert, dead-letter, audit.

One call handles a batch (an HTTP request, or what the MQTT ingestor pulled since its last
commit) in one transaction, so the caller acknowledges only what is committed. A message is
taken or rejected as a whole: storing part of it would make its redelivery ambiguous.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import BinaryField, F
from django.db.models.functions import Cast, Coalesce, Greatest
from django.utils import timezone

from apps.audit.models import Action
from apps.audit.models import Outcome as AuditOutcome
from apps.audit.services import record_rows
from apps.core import crypto
from apps.records.models import CodeSystem, Concept, Observation, Source, interpret

from ..models import (
    DEAD_LETTER_RAW_BYTES,
    DEVICE_REF_LENGTH,
    DeadLetter,
    DeadLetterReason,
    Device,
    DeviceMessage,
)
from ..protocol import Message, ProtocolError, Token, device_id_from_topic, parse_token, verify
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
    device: DeviceRow
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
        self, index: int, reason: str, detail: str, device: DeviceRow | None = None, ref: str = ""
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
                device_id=device.pk if device else None,
                device_ref=(device.device_id if device else ref)[:DEVICE_REF_LENGTH],
                raw=bytes(raw.payload[:DEAD_LETTER_RAW_BYTES]),
                size=len(raw.payload),
            )
        )


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """What ingestion needs of a device, read without building a model instance."""

    pk: int
    device_id: str
    status: str
    patient_id: int | None
    secret: str
    battery: int | None
    last_seen_at: dt.datetime | None
    last_reading_at: dt.datetime | None


@lru_cache(maxsize=65536)
def _open_secret(sealed: bytes) -> str:
    # The same ciphertext always opens to the same secret: decrypt each device once per process.
    return crypto.open_sealed(sealed).decode()


def _devices(device_ids: set[str]) -> dict[str, DeviceRow]:
    # The sealed bytes as stored (a cast skips the field's own decryption): see _open_secret.
    rows = (
        Device.objects.filter(device_id__in=device_ids)
        .annotate(sealed=Cast("secret", output_field=BinaryField()))
        .values_list(
            "pk",
            "device_id",
            "status",
            "patient_id",
            "sealed",
            "battery",
            "last_seen_at",
            "last_reading_at",
        )
    )
    found = {}
    for pk, device_id, status, patient_id, sealed, battery, seen, reading in rows:
        secret = _open_secret(bytes(sealed))
        found[device_id] = DeviceRow(
            pk, device_id, status, patient_id, secret, battery, seen, reading
        )
    return found


def _concepts() -> dict[str, Concept]:
    return {
        c.code: c
        for c in Concept.objects.filter(system=CodeSystem.LOINC, code__in=list(MEASUREMENTS))
    }


def _check_message(
    message: Message, device: DeviceRow, raw: RawMessage, concepts: dict[str, Concept]
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
    claimed: dict[int, Token] = {}
    limit = settings.DEVICES_MAX_PAYLOAD_BYTES
    for index, raw in enumerate(batch.messages):
        if len(raw.payload) > limit:
            ref = device_id_from_topic(raw.topic) or ""
            detail = f"payload of {len(raw.payload)}+ bytes; the limit is {limit} bytes"
            batch.reject(index, DeadLetterReason.OVERSIZED, detail, ref=ref)
            continue
        try:
            claimed[index] = parse_token(raw.payload)
        except ProtocolError as exc:
            batch.reject(index, exc.reason, exc.detail, ref=device_id_from_topic(raw.topic) or "")
    wanted = {token.kid for token in claimed.values()}
    devices = _devices(wanted)
    concepts = _concepts() if devices else {}
    accepted = []
    for index, token in claimed.items():
        raw = batch.messages[index]
        ref = token.kid
        device = devices.get(ref)
        try:
            message = verify(
                token,
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
    if connection.vendor == "postgresql":
        # One array per column: 6 parameters however long the batch (cheaper to bind).
        sql = (
            f"INSERT INTO {table} "  # noqa: S608 - only the table name is interpolated
            "(device_id, message_id, measured_at, received_at, readings, transport) "
            "SELECT * FROM unnest(%s::bigint[], %s::varchar[], %s::timestamptz[], "
            "%s::timestamptz[], %s::int[], %s::varchar[]) "
            "ON CONFLICT (device_id, message_id) DO NOTHING RETURNING device_id, message_id"
        )
        columns: list[Any] = [
            [row.device.pk for row in rows],
            [row.message.message_id for row in rows],
            [row.message.measured_at for row in rows],
            [row.raw.received_at for row in rows],
            [len(row.values) for row in rows],
            [row.raw.transport for row in rows],
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, columns)
            return {(device_pk, message_id) for device_pk, message_id in cursor.fetchall()}
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


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored reading: what the rules, the live push and the audit need of its row."""

    pk: int
    patient_id: int
    code_id: int
    value: Decimal
    unit: str
    interpretation: str
    effective_at: dt.datetime
    device_id: str


def _category(concept: Concept) -> str:
    if concept.category == "vital-signs":
        return Observation.Category.VITAL_SIGNS
    return Observation.Category.LABORATORY


def _store_observations(rows: list[_Accepted]) -> list[Stored]:
    """Insert one Observation per reading; PostgreSQL: ids from the sequence, then COPY."""
    readings = [
        (row, concept, value, unit, interpret(value, concept.low, concept.high))
        for row in rows
        for concept, value, unit in row.values
    ]
    if not readings:
        return []
    if connection.vendor == "postgresql":
        ids = _copy_observations(readings)
    else:
        built = Observation.objects.bulk_create(
            [
                Observation(
                    patient_id=row.patient_pk,
                    code=concept,
                    category=_category(concept),
                    value=value,
                    unit=unit,
                    ref_low=concept.low,
                    ref_high=concept.high,
                    # bulk_create skips Observation.save, which would set it.
                    interpretation=interpretation,
                    effective_at=row.message.measured_at,
                    recorded_at=row.raw.received_at,
                    source=Source.DEVICE,
                    device_id=row.device.device_id,
                )
                for row, concept, value, unit, interpretation in readings
            ]
        )
        ids = [obs.pk for obs in built]
    return [
        Stored(
            pk,
            row.patient_pk,
            concept.pk,
            value,
            unit,
            interpretation,
            row.message.measured_at,
            row.device.device_id,
        )
        for pk, (row, concept, value, unit, interpretation) in zip(ids, readings, strict=True)
    ]


# The columns the ingestion sets; every other column gets its field's default, as with
# bulk_create (a column renamed in the model makes the COPY fail loudly, never silently).
_SET = (
    "id",
    "fhir_id",
    "updated_at",
    "patient_id",
    "recorded_at",
    "code_id",
    "category",
    "value",
    "unit",
    "ref_low",
    "ref_high",
    "interpretation",
    "effective_at",
    "source",
    "device_id",
)


def _copy_observations(readings: list[tuple[_Accepted, Concept, Decimal, str, str]]) -> list[int]:
    """Reserve ids from the table's sequence, then COPY the rows (5-10x bulk_create's speed)."""
    meta = Observation._meta
    table = connection.ops.quote_name(meta.db_table)
    others = [f for f in meta.concrete_fields if f.column not in _SET]
    columns = ", ".join(connection.ops.quote_name(c) for c in (*_SET, *(f.column for f in others)))
    defaults = tuple(f.get_default() for f in others)
    now = timezone.now()  # auto_now of updated_at, one value for the batch
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [meta.db_table, len(readings)],
        )
        ids = [pk for (pk,) in cursor.fetchall()]
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for pk, (row, concept, value, unit, interpretation) in zip(ids, readings, strict=True):
                copy.write_row(
                    (
                        pk,
                        uuid.uuid4(),
                        now,
                        row.patient_pk,
                        row.raw.received_at,
                        concept.pk,
                        _category(concept),
                        value,
                        unit,
                        concept.low,
                        concept.high,
                        interpretation,
                        row.message.measured_at,
                        Source.DEVICE,
                        row.device.device_id,
                        *defaults,
                    )
                )
    return ids


# A device that reports every second would rewrite its row every batch: its telemetry is
# written only when it says something new (battery, a later reading) or this much later.
TELEMETRY_EVERY = dt.timedelta(seconds=30)


def _telemetry_is_news(row: _Accepted, seen: dt.datetime) -> bool:
    """Compared with the device row as read at the start of the batch."""
    device, message = row.device, row.message
    if message.battery is not None and message.battery != device.battery:
        return True
    if device.last_seen_at is None or device.last_reading_at is None:
        return True
    return (
        seen - device.last_seen_at >= TELEMETRY_EVERY
        or message.measured_at - device.last_reading_at >= TELEMETRY_EVERY
    )


def _touch_devices(rows: list[_Accepted]) -> None:
    """Last seen / last reading / battery; telemetry, so the FHIR version stays the same.

    The device rows are locked in primary-key order (two ingestors cannot deadlock) and this
    runs last before the commit, so the rows stay locked as briefly as possible.
    """
    latest: dict[int, _Accepted] = {}
    seen: dict[int, dt.datetime] = {}
    for row in rows:
        pk = row.device.pk
        if pk not in latest or row.message.measured_at >= latest[pk].message.measured_at:
            latest[pk] = row
        seen[pk] = max(seen.get(pk, row.raw.received_at), row.raw.received_at)
    pks = sorted(pk for pk in latest if _telemetry_is_news(latest[pk], seen[pk]))
    if not pks:
        return
    if connection.vendor != "postgresql":
        for pk in pks:
            row = latest[pk]
            changes: dict[str, Any] = {
                "last_seen_at": Greatest(Coalesce(F("last_seen_at"), seen[pk]), seen[pk]),
                "last_reading_at": Greatest(
                    Coalesce(F("last_reading_at"), row.message.measured_at),
                    row.message.measured_at,
                ),
            }
            if row.message.battery is not None:
                changes["battery"] = row.message.battery
            Device.objects.filter(pk=pk).update(**changes)
        return
    table = connection.ops.quote_name(Device._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE id = ANY(%s) ORDER BY id FOR UPDATE",  # noqa: S608
            [pks],
        )
        # GREATEST: another ingestor may have committed a later reading meanwhile.
        cursor.execute(
            f"UPDATE {table} AS d SET "  # noqa: S608 - only the table name is interpolated
            "last_seen_at = GREATEST(COALESCE(d.last_seen_at, v.seen), v.seen), "
            "last_reading_at = GREATEST(COALESCE(d.last_reading_at, v.reading), v.reading), "
            "battery = COALESCE(v.battery, d.battery) "
            "FROM unnest(%s::bigint[], %s::timestamptz[], %s::timestamptz[], %s::int[]) "
            "AS v(id, seen, reading, battery) WHERE d.id = v.id",
            [
                pks,
                [seen[pk] for pk in pks],
                [latest[pk].message.measured_at for pk in pks],
                [latest[pk].message.battery for pk in pks],
            ],
        )


def _audit(rows: list[_Accepted], stored: list[Stored]) -> None:
    """One audit row per patient for the batch, appended to the chain in one COPY."""
    per_patient: dict[int, Counter[str]] = {}
    for obs in stored:
        per_patient.setdefault(obs.patient_id, Counter())[obs.device_id] += 1
    transports = sorted({row.raw.transport for row in rows})
    now = timezone.now()
    record_rows(
        [
            {
                "occurred_at": now,
                "actor_id": None,
                "actor_label": "",
                "actor_role": "",
                "action": Action.CREATE.value,
                "outcome": AuditOutcome.SUCCESS.value,
                "object_type": "devices.reading",
                "object_id": ",".join(sorted(devices))[:100],
                "patient_id": str(patient_pk),
                "ip": None,
                "user_agent": "",
                "detail": {
                    "observations": sum(devices.values()),
                    "devices": dict(devices),
                    "transport": transports,
                },
            }
            for patient_pk, devices in per_patient.items()
        ]
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
        observations = _store_observations(new)
        if new:
            # Before the commit, so no reading is acknowledged without its alert.
            concept_codes = {
                concept.pk: concept.code for row in new for concept, _v, _u in row.values
            }
            evaluation = thresholds.evaluate(observations, concept_codes)
            # Readings first: a dashboard shows the value, then the alert about it.
            push_readings(observations, concept_codes, evaluation.rules)
            result.alerts = [alert.pk for alert in raise_alerts(evaluation)]
            # Last: the audit chain's lock and the device rows are held until the commit.
            _audit(new, observations)
            _touch_devices(new)
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
