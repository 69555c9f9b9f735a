"""Bulk Data `$export`: jobs, the worker that writes encrypted NDJSON files, cancel and purge.

A job is created by `start_export` (the HTTP kick-off or a benchmark) and run by a Celery task
through `run_export`. The worker reads every row inside one REPEATABLE READ snapshot, so the
counts and the files agree and `transactionTime` means what the Bulk Data IG says, while a
second connection publishes progress and notices cancellation between blocks. The high-volume
types are serialized a block at a time from plain column tuples (`apps.records.fhir.batch`), the
others through `to_fhir`; the file format is `export_files`'.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.audit.fhir import attach_references
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.fhir.batch import batch_lines, dumps_line
from apps.records.models import Patient

from .export_files import (
    SealedFile,
    read_file,
    storage_path,
    storage_root,
    sweep_orphans,
    unlink,
    unlink_all,
)
from .fhir_api.auth import SYSTEM, Caller, parse_scopes
from .fhir_api.errors import FhirHttpError, not_found
from .fhir_api.registry import ResourceType, all_types, get
from .fhir_api.scope import scoped
from .models import ExportFile, ExportJob

# `read_file` and `storage_path` are part of this module's interface (downloads, benchmarks).
__all__ = [
    "cancel_export",
    "exportable_types",
    "find_group",
    "purge_expired",
    "read_file",
    "resolve_types",
    "run_export",
    "start_export",
    "storage_path",
]

logger = logging.getLogger(__name__)

MAX_ACTIVE_JOBS = 5
MAX_PER_FILE = 100_000
BLOCK_SIZE = 1_000
ACTIVE = (ExportJob.Status.QUEUED, ExportJob.Status.RUNNING)
# Types exported only when `_type` names them (the IG's default is "all clinical data").
ON_REQUEST_ONLY = frozenset({"AuditEvent"})
_LOCK_NAMESPACE = 0x5648
# Types whose mapping resolves references for many rows at once (search does it per page
# through the queryset; a server-side cursor bypasses that, so the worker calls it per block).
BATCH_PREPARE: dict[str, Callable[[list[Any]], Any]] = {"AuditEvent": attach_references}


class Cancelled(Exception):
    """The job was cancelled (or purged) while the worker was writing it."""


# ---------------------------------------------------------------------------------------------
# Kick-off


def exportable_types(caller: Caller, level: str) -> list[ResourceType]:
    """Types the caller's kind may use at this level (patient compartments below system)."""
    return [
        rtype
        for rtype in all_types()
        if _allows(rtype, caller)
        and (level == ExportJob.Level.SYSTEM or rtype.patient_path is not None)
    ]


def _allows(rtype: ResourceType, caller: Caller) -> bool:
    """The token kind, and the type's own caller check (AuditEvent: administrators only)."""
    return caller.kind in rtype.kinds and rtype.allows(caller)


def resolve_types(caller: Caller, level: str, names: list[str] | None) -> list[str]:
    """The type names to export; unknown or unreadable requested types are a 400."""
    available = {rtype.name: rtype for rtype in exportable_types(caller, level)}
    if not names:
        chosen = [
            name for name in available if name not in ON_REQUEST_ONLY and caller.can(name, "r")
        ]
        if not chosen:
            raise FhirHttpError(
                403,
                f"The token's scopes allow reading none of the types exported at {level} level.",
                code="forbidden",
            )
        return chosen
    chosen = []
    for name in dict.fromkeys(names):
        if name not in available:
            where = "" if level == ExportJob.Level.SYSTEM else " in a patient compartment"
            raise FhirHttpError(
                400,
                f"_type {name!r} cannot be exported{where}; exportable types: "
                f"{', '.join(sorted(available))}.",
                expression=["_type"],
            )
        if not caller.can(name, "r"):
            raise FhirHttpError(
                400,
                f"_type {name!r} is not allowed: the token has no {caller.kind}/{name}.r scope.",
                expression=["_type"],
            )
        chosen.append(name)
    return chosen


def find_group(group_id: str) -> Organization:
    """A Group is an organization of the network; its members are its patients."""
    try:
        uuid.UUID(group_id)
    except ValueError:
        raise not_found("Group", group_id) from None
    organization = Organization.objects.filter(fhir_id=group_id).first()
    if organization is None:
        raise not_found("Group", group_id)
    return organization


def start_export(
    caller: Caller,
    *,
    level: str,
    group_id: str = "",
    types: list[str] | None = None,
    since: dt.datetime | None = None,
    request_url: str,
) -> ExportJob:
    """Create a job for the caller and queue its task once the row is committed."""
    if level not in ExportJob.Level.values:
        raise FhirHttpError(400, f"Unknown export level {level!r}.")
    if level == ExportJob.Level.SYSTEM and caller.kind != SYSTEM:
        raise FhirHttpError(
            403,
            "System-level $export needs a backend system token (OAuth2 client credentials); "
            "use Patient/$export or Group/<id>/$export.",
            code="forbidden",
        )
    if level == ExportJob.Level.GROUP:
        find_group(group_id)
    names = resolve_types(caller, level, types)
    with transaction.atomic():
        _lock_requester(caller.key)
        if ExportJob.objects.filter(requester=caller.key, status__in=ACTIVE).count() >= (
            MAX_ACTIVE_JOBS
        ):
            raise FhirHttpError(
                429,
                f"At most {MAX_ACTIVE_JOBS} exports may be queued or running at once; wait for "
                "one to finish or cancel one (DELETE its status URL).",
                code="throttled",
                headers={"Retry-After": "60"},
            )
        job = ExportJob.objects.create(
            requester=caller.key,
            caller=caller_state(caller),
            level=level,
            group_id=group_id if level == ExportJob.Level.GROUP else "",
            types=names,
            since=since,
            request_url=request_url[:2000],
        )
        transaction.on_commit(lambda: _queue(job.pk))
    return job


def _queue(job_id: uuid.UUID) -> None:
    from .tasks import run_export_task

    run_export_task.delay(str(job_id))


def _lock_requester(key: str) -> None:
    """Serialise kick-offs of one requester so the active-job limit cannot be raced past."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [_LOCK_NAMESPACE, zlib.crc32(key.encode()) - 2**31],
            )


def caller_state(caller: Caller) -> dict[str, Any]:
    """What the worker needs to rebuild the caller's view of the data."""
    return {
        "kind": caller.kind,
        "user_id": caller.user.pk if caller.user is not None else None,
        "scopes": [
            f"{s.context}/{s.resource}.{''.join(p for p in 'cruds' if p in s.permissions)}"
            for s in caller.scopes
        ],
        "label": caller.label,
        "detail": caller.detail,
    }


def rebuild_caller(state: dict[str, Any]) -> Caller:
    user = None
    if state.get("user_id") is not None:
        user = get_user_model().objects.filter(pk=state["user_id"]).first()
    kind = str(state.get("kind", ""))
    scopes = tuple(s for s in parse_scopes(list(state.get("scopes", []))) if s.context == kind)
    return Caller(
        kind,
        user if isinstance(user, User) else None,
        scopes,
        str(state.get("label", "")),
        dict(state.get("detail", {})),
    )


# ---------------------------------------------------------------------------------------------
# The worker


@dataclass
class _Written:
    """A finished file of this run, registered once the job completes."""

    resource_type: str
    index: int
    storage_name: str
    count: int
    size: int
    key_id: str


@dataclass
class _Run:
    job: ExportJob
    progress: BaseDatabaseWrapper
    max_per_file: int
    block_size: int
    done: int = 0
    written: list[_Written] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def run_export(
    job_id: uuid.UUID | str, *, max_per_file: int = MAX_PER_FILE, block_size: int = BLOCK_SIZE
) -> None:
    """Run a queued job in this process; a no-op unless the job is still queued."""
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return
    job = ExportJob.objects.get(pk=job_id)
    run: _Run | None = None
    try:
        with _snapshot() as progress:
            run = _Run(job, progress, max(1, max_per_file), max(1, block_size))
            _write_all(run)
        _complete(run)
    except Cancelled:
        _remove_written(run)
    except FhirHttpError as error:
        _remove_written(run)
        _fail(job, error.diagnostics)
    except Exception as error:
        logger.exception("FHIR export %s failed", job_id)
        _remove_written(run)
        _fail(job, f"The export failed ({type(error).__name__}); the error was logged.")


@contextlib.contextmanager
def _snapshot() -> Iterator[BaseDatabaseWrapper]:
    """A read-only REPEATABLE READ snapshot, and the connection that reports progress.

    Inside a caller's transaction (tests, benchmarks) that transaction is the snapshot and
    progress goes through it too: another connection could not see the uncommitted job.
    """
    if connection.in_atomic_block or connection.vendor != "postgresql":
        yield connection
        return
    side = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                # Compiling the big scans costs ~0.4 s per query and gains nothing on them.
                cursor.execute("SET LOCAL jit = off")
            yield side
    finally:
        side.close()


def _report(run: _Run, **values: int) -> None:
    """Publish progress; raise Cancelled when the job is no longer running."""
    table = run.progress.ops.quote_name(ExportJob._meta.db_table)
    assignments = ", ".join(f"{run.progress.ops.quote_name(name)} = %s" for name in values)
    with run.progress.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {assignments} WHERE id = %s AND status = %s",  # noqa: S608 - names are ours
            [*values.values(), run.job.pk, ExportJob.Status.RUNNING],
        )
        if cursor.rowcount == 0:
            raise Cancelled


def _write_all(run: _Run) -> None:
    job = run.job
    caller = rebuild_caller(job.caller)
    organization = find_group(job.group_id) if job.level == ExportJob.Level.GROUP else None
    plan: list[tuple[ResourceType, list[models.QuerySet[Any]]]] = []
    for name in job.types:
        rtype = get(name)
        if rtype is None:
            raise LookupError(f"resource type {name} is no longer served")
        plan.append(
            (rtype, [_rows(caller, rtype, m, organization, job.since) for m in rtype.models])
        )
    total = sum(qs.count() for _rtype, querysets in plan for qs in querysets)
    _report(run, resources_total=total)
    root = storage_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    for rtype, querysets in plan:
        writer = _TypeWriter(run, rtype.name, root)
        try:
            for queryset in querysets:
                _write_rows(writer, rtype, queryset, run.block_size)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        run.counts[rtype.name] = writer.total


def _write_rows(
    writer: _TypeWriter, rtype: ResourceType, queryset: models.QuerySet[Any], block_size: int
) -> None:
    """One model's rows, read from a server-side cursor a block at a time."""
    serializer = batch_lines(queryset.model)
    if serializer is not None:
        for lines in serializer(queryset, block_size):
            writer.add_lines(lines)
        return
    rows: list[Any] = []
    for obj in queryset.iterator(chunk_size=block_size):
        rows.append(obj)
        if len(rows) >= block_size:
            writer.add_objects(rtype, rows)
            rows = []
    writer.add_objects(rtype, rows)


def _rows(
    caller: Caller,
    rtype: ResourceType,
    model: type[models.Model],
    organization: Organization | None,
    since: dt.datetime | None,
) -> models.QuerySet[Any]:
    """Exactly what search would show the caller, narrowed to the group and `_since`."""
    queryset = scoped(caller, rtype, model)
    if organization is not None:
        members = Patient.objects.filter(organization=organization).values("pk")
        lookup = "pk__in" if rtype.patient_path == "" else f"{rtype.patient_path}__in"
        queryset = queryset.filter(**{lookup: members})
    if since is not None:
        changed = _changed_field(model)
        if changed:
            queryset = queryset.filter(**{f"{changed}__gt": since})
    # `scoped` already loads what the mappers read (search.RELATED), in a fixed number of queries.
    return queryset.order_by()


def _changed_field(model: type[models.Model]) -> str:
    names = {f.name for f in model._meta.get_fields()}
    return next((name for name in ("updated_at", "occurred_at") if name in names), "")


class _TypeWriter:
    """Lines of one type, cut into blocks and files of at most `max_per_file` lines."""

    def __init__(self, run: _Run, resource_type: str, root: Path) -> None:
        self.run = run
        self.resource_type = resource_type
        self.root = root
        self.lines: list[bytes] = []
        self.total = 0
        self.index = 0
        self.file: SealedFile | None = None

    def add_objects(self, rtype: ResourceType, rows: list[Any]) -> None:
        """Rows of a model without a batch serializer: `to_fhir` one by one."""
        prepare = BATCH_PREPARE.get(rtype.name)
        if prepare is not None and rows:
            prepare(rows)
        to_fhir = rtype.to_fhir
        self.add_lines([dumps_line(to_fhir(row)) for row in rows])

    def add_lines(self, lines: list[bytes]) -> None:
        start = 0
        while start < len(lines):
            room = self._room() - len(self.lines)
            self.lines.extend(lines[start : start + room])
            start += room
            if len(self.lines) >= self._room():
                self._flush()

    def _room(self) -> int:
        """Lines the next block may hold: a block never straddles two files."""
        written = self.file.count if self.file is not None else 0
        return min(self.run.block_size, self.run.max_per_file - written)

    def _flush(self) -> None:
        if not self.lines:
            return
        if self.file is None:
            self.index += 1
            name = f"{self.resource_type}-{self.index}.ndjson"
            self.file = SealedFile(self.root, self.run.job.pk, name)
        self.file.write_block(self.lines)
        self.total += len(self.lines)
        self.run.done += len(self.lines)
        self.lines = []
        if self.file.count >= self.run.max_per_file:
            self._finish_file()
        _report(self.run, resources_done=self.run.done)

    def _finish_file(self) -> None:
        assert self.file is not None  # noqa: S101 - only called with a file open
        storage_name = self.file.publish()  # if this fails, abort() still discards the file
        sealed, self.file = self.file, None
        self.run.written.append(
            _Written(
                self.resource_type,
                self.index,
                storage_name,
                sealed.count,
                sealed.size,
                sealed.key_id,
            )
        )

    def close(self) -> None:
        self._flush()
        if self.file is not None:
            self._finish_file()

    def abort(self) -> None:
        if self.file is not None:
            self.file.discard()
            self.file = None


def _complete(run: _Run) -> None:
    job = run.job
    now = timezone.now()
    with transaction.atomic():
        current = ExportJob.objects.select_for_update().filter(pk=job.pk).first()
        if current is None or current.status != ExportJob.Status.RUNNING:
            raise Cancelled
        ExportFile.objects.bulk_create(
            ExportFile(
                job=current,
                resource_type=w.resource_type,
                index=w.index,
                storage_name=w.storage_name,
                count=w.count,
                size=w.size,
                key_id=w.key_id,
            )
            for w in run.written
        )
        current.status = ExportJob.Status.COMPLETED
        current.resources_done = run.done
        current.finished_at = now
        current.expires_at = now + dt.timedelta(hours=settings.FHIR_EXPORT_RETENTION_HOURS)
        current.save(update_fields=["status", "resources_done", "finished_at", "expires_at"])
    caller = rebuild_caller(job.caller)
    audit(
        Action.EXPORT,
        actor=caller.user,
        object_type="fhir.$export",
        object_id=str(job.pk),
        detail={
            "fhir": "bulk-export-completed",
            "caller": caller.label,
            "kind": caller.kind,
            "level": job.level,
            "counts": run.counts,
            "files": len(run.written),
        },
    )


def _fail(job: ExportJob, message: str) -> None:
    now = timezone.now()
    ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.RUNNING).update(
        status=ExportJob.Status.FAILED,
        error=message,
        finished_at=now,
        expires_at=now + dt.timedelta(hours=settings.FHIR_EXPORT_RETENTION_HOURS),
    )


def _remove_written(run: _Run | None) -> None:
    for written in run.written if run is not None else []:
        unlink(written.storage_name)


# ---------------------------------------------------------------------------------------------
# Cancel and purge


def cancel_export(job: ExportJob) -> bool:
    """Cancel a job (running or not) and delete its files; False if it was already gone."""
    now = timezone.now()
    with transaction.atomic():
        current = ExportJob.objects.select_for_update().filter(pk=job.pk).first()
        if current is None or current.status == ExportJob.Status.CANCELLED:
            return False
        names = list(current.files.values_list("storage_name", flat=True))
        current.files.all().delete()
        current.status = ExportJob.Status.CANCELLED
        current.finished_at = current.finished_at or now
        current.expires_at = now
        current.save(update_fields=["status", "finished_at", "expires_at"])
        transaction.on_commit(partial(unlink_all, names))
    return True


def purge_expired(now: dt.datetime | None = None) -> int:
    """Delete expired jobs with their files, fail lost jobs, sweep orphan files; jobs purged."""
    now = now or timezone.now()
    retention = dt.timedelta(hours=settings.FHIR_EXPORT_RETENTION_HOURS)
    # A job still queued or running after a whole retention period lost its worker.
    ExportJob.objects.filter(status__in=ACTIVE, created_at__lt=now - retention).update(
        status=ExportJob.Status.FAILED,
        error="The export did not finish in time (its worker was lost); start it again.",
        finished_at=now,
        expires_at=now + retention,
    )
    purged = 0
    expired = ExportJob.objects.filter(expires_at__lt=now).exclude(status__in=ACTIVE)
    for job_id in expired.values_list("pk", flat=True):
        with transaction.atomic():
            job = ExportJob.objects.select_for_update().filter(pk=job_id).first()
            if job is None:
                continue
            names = list(job.files.values_list("storage_name", flat=True))
            job.delete()
            transaction.on_commit(partial(unlink_all, names))
        purged += 1
    sweep_orphans(now - retention)
    return purged
