"""Writing and verifying the audit trail. Every audited action goes through `record`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, models, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.core.net import get_client_ip, get_user_agent

from .models import (
    GENESIS_HASH,
    HASHED_FIELDS,
    Action,
    AuditCheckpoint,
    AuditEvent,
    Outcome,
    canonical_json,
)

# Any constant works: it only has to be the same for every writer of the chain.
_CHAIN_LOCK_ID = 0x5648_4155_4449_54


def _lock_chain() -> None:
    """Serialise writers so each row chains to the one committed just before it."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_ID])
    # SQLite: the IMMEDIATE transaction mode set in settings already takes the write lock.


def record(
    action: str,
    *,
    request: HttpRequest | None = None,
    actor: Any = None,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    patient_id: str = "",
    outcome: str = Outcome.SUCCESS,
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
    user_agent: str = "",
) -> AuditEvent:
    """Append one event: who, what, which object and patient, when, from where, outcome."""
    if actor is None and request is not None:
        actor = getattr(request, "user", None)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if request is not None:
        ip = ip or get_client_ip(request)
        user_agent = user_agent or get_user_agent(request)
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
    event = AuditEvent(
        occurred_at=timezone.now(),
        actor_id=actor.pk if actor is not None else None,
        actor_label=(actor.email if actor is not None else ""),
        actor_role=(getattr(actor, "role", "") if actor is not None else ""),
        action=action,
        outcome=outcome,
        object_type=object_type,
        object_id=str(object_id),
        patient_id=str(patient_id),
        ip=ip,
        user_agent=user_agent[:300],
        detail=detail or {},
    )
    # Inside the caller's transaction no savepoint: an audit row that fails must fail the
    # whole change it records (and two round trips per audited action are saved).
    with transaction.atomic(savepoint=False):
        _lock_chain()
        head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
        event.seq = (head["seq"] if head else 0) + 1
        event.prev_hash = head["hash"] if head else GENESIS_HASH
        event.hash = event.compute_hash()
        event.save(force_insert=True)
    return event


def record_many(events: list[AuditEvent]) -> list[AuditEvent]:
    """Append unsaved events built by the caller (a batch): one lock, one head read, one INSERT.

    The events must carry `occurred_at`, the actor and object fields, as `record` would have
    set them. They get their `seq` and hashes; on PostgreSQL their `pk` stays None (COPY).
    """
    if not events:
        return events
    rows = [{name: getattr(event, name) for name in HASHED_FIELDS[1:-1]} for event in events]
    for event, (seq, prev_hash, digest) in zip(events, record_rows(rows), strict=True):
        event.seq, event.prev_hash, event.hash = seq, prev_hash, digest
    return events


def record_rows(rows: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """Append events given as plain field dicts (bulk writers: no model instances to build).

    Each row holds every hashed field but `seq` and `prev_hash` (see `HASHED_FIELDS`), as
    `record` would have set them. Returns each row's (seq, prev_hash, hash). One lock, one head
    read and one COPY (PostgreSQL) or INSERT for the whole batch; the chain is the same as if
    each row had gone through `record`.
    """
    if not rows:
        return []
    chained: list[tuple[int, str, str]] = []
    with transaction.atomic(savepoint=False):  # see `record`
        _lock_chain()
        head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
        seq, prev_hash = (head["seq"], head["hash"]) if head else (0, GENESIS_HASH)
        for row in rows:
            seq += 1
            row["seq"], row["prev_hash"] = seq, prev_hash
            digest = hashlib.sha256(canonical_json(row).encode()).hexdigest()
            chained.append((seq, prev_hash, digest))
            row["hash"] = prev_hash = digest
        if connection.vendor == "postgresql":
            _copy_rows(rows)  # the chain lock is held: the faster the better
        else:
            AuditEvent.objects.bulk_create([AuditEvent(**row) for row in rows])
    return chained


_COPIED = (*HASHED_FIELDS, "hash")


def _copy_rows(rows: list[dict[str, Any]]) -> None:
    """COPY the rows (every column but the id), the JSON detail serialised once here."""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(c) for c in _COPIED)
    detail = _COPIED.index("detail")
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # noqa: S608
            for row in rows:
                values = [row[name] for name in _COPIED]
                values[detail] = json.dumps(values[detail], ensure_ascii=False)
                copy.write_row(values)


def do_checkpoint() -> AuditCheckpoint | None:
    """Remember the current head of the chain (run periodically)."""
    head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
    if head is None:
        return None
    return AuditCheckpoint.objects.create(seq=head["seq"], hash=head["hash"])


@dataclass
class VerifyReport:
    checked: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[str] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def _events() -> Iterator[AuditEvent]:
    return AuditEvent.objects.order_by("seq").iterator(chunk_size=2000)


def verify_chain(max_problems: int = 50) -> VerifyReport:
    """Recompute every hash and link; report altered, removed or reordered rows."""
    report = VerifyReport()
    expected_seq = 1
    prev_hash = GENESIS_HASH
    for event in _events():
        report.checked += 1
        if event.seq != expected_seq:
            report.problems.append(
                f"rows #{expected_seq}..#{event.seq - 1} are missing (removed)"
                if event.seq > expected_seq
                else f"row #{event.seq} is out of order"
            )
        if event.prev_hash != prev_hash:
            report.problems.append(f"row #{event.seq} does not link to the row before it")
        if event.compute_hash() != event.hash:
            report.problems.append(f"row #{event.seq} was altered (hash mismatch)")
        prev_hash = event.hash
        expected_seq = event.seq + 1
        report.head_seq, report.head_hash = event.seq, event.hash
        if len(report.problems) >= max_problems:
            report.problems.append("too many problems; stopped")
            return report
    hashes = dict(
        AuditEvent.objects.filter(seq__in=AuditCheckpoint.objects.values("seq")).values_list(
            "seq", "hash"
        )
    )
    for checkpoint in AuditCheckpoint.objects.order_by("seq"):
        if hashes.get(checkpoint.seq) != checkpoint.hash:
            report.problems.append(
                f"checkpoint of {checkpoint.created_at:%Y-%m-%d %H:%M} names row "
                f"#{checkpoint.seq}, which is missing or different (rows removed from the end?)"
            )
    return report


__all__ = ["Action", "Outcome", "do_checkpoint", "record", "verify_chain"]
