"""Saving a care-coordination Task (create and update) through the care services.

Called by `persist.persist` once `savers.save_resource` has checked the body, the scopes, the
patient (`Task.for`, visible to the caller: otherwise 404, audited) and the references. Every
change goes through `apps.care.services.tasks`, so the permissions, audit rows, notifications
and live events are the portal's; a refusal of a service is a 422 (business-rule) whose
diagnostics are the service's message. The reverse of `apps.care.fhir.task_to_fhir`.

Choices made here:
- Tasks are changed in a person's name: a clinician's token (a staff token; `check_writer`
  already refuses patients and non-clinical staff). System tokens get 403.
- Create (`POST`, or a Bundle entry): `status` must be requested and `intent` order;
  `for` → patient, `code` (a coding of SYS_TASK_KIND) → kind, `description` → title (both
  required), `priority` (routine when left out), `owner` → assignee (Practitioner/<id> or the
  account identifier SYS_USER|<id>, as `_user_ref` writes it), else `performerType[0]`
  (SYS_ROLE) → the profession it waits for, `restriction.period.end` → due time, `basedOn`
  (one CarePlan of the same patient) → plan, `note[0].text` → instructions; further notes are
  added as notes. The requester is always the token's person: a different `requester` (or note
  author) is a 422. `statusReason` and `output` belong to cancelling and completing (422).
- Update (`PUT`, with the usual If-Match): the body is the whole Task, as read. Only these
  change, in this order, each through its service:
  1. `owner` / `performerType`: a claim (the token's person), a hand-over to a colleague, or to
     a profession (no owner, performerType). Handing over an in-progress task puts it back to
     requested, as in the portal, even when the body still says in-progress.
  2. `status`: in-progress (start, or resume after a hold), on-hold, completed (the report in
     `output[0].valueString`, required for some kinds), cancelled (the reason in
     `statusReason.text`, required). Nothing goes back to requested but by a hand-over, and a
     completed or cancelled task is never reopened.
  3. `note`: the stored notes must come back unchanged, in order (by text); new ones at the end
     are added (written by the token's person, now).
  Any other difference (code, description, for, basedOn, requester, priority, restriction,
  intent, a report or a reason outside completing or cancelling) is a 422 naming the element;
  elements we do not store (identifier, input, focus…) are a 422 too. The server's own
  elements are ignored: meta, text, extension (origin), authoredOn, lastModified,
  executionPeriod (start and completion times), and the display texts of codings and people.
- A PUT to an unknown (UUID) id creates the Task with that id, as for the other types.
- The services run in English, the API's language: their refusals come back in English (and
  the notifications they send read in English, as when an English-speaking clinician acts in
  the portal).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from django.http import Http404, HttpRequest
from django.utils import translation

from apps.accounts.models import User
from apps.care.fhir import SYS_TASK_KIND
from apps.care.models import CarePlan, Task
from apps.care.services import CareError
from apps.care.services.tasks import (
    CLOSED_TASK_STATUSES,
    do_add_task_note,
    do_assign_task,
    do_cancel_task,
    do_complete_task,
    do_create_task,
    do_put_on_hold,
    do_start_task,
)
from apps.records.access import PatientAccess, get_patient_for_user
from apps.records.fhir import SYS_ROLE, SYS_USER, FhirError
from apps.records.fhir.helpers import _datetime, _parse_reference, _user_id
from apps.records.models import Patient
from apps.records.services import RecordError

from .auth import SYSTEM, Caller
from .errors import FhirHttpError

T = TypeVar("T")

# Elements set by the server, ignored when written.
SERVER_ELEMENTS = frozenset(
    {"meta", "text", "extension", "authoredOn", "lastModified", "executionPeriod", "language"}
)
# Elements this mapping reads.
MAPPED_ELEMENTS = frozenset(
    {
        "resourceType",
        "id",
        "basedOn",
        "status",
        "statusReason",
        "intent",
        "priority",
        "code",
        "description",
        "for",
        "requester",
        "performerType",
        "owner",
        "note",
        "restriction",
        "output",
    }
)
STATUSES = tuple(Task.Status.values)


def _refuse(message: str, *paths: str, code: str = "business-rule") -> FhirHttpError:
    return FhirHttpError(422, message, code=code, expression=list(paths))


def _service(change: Callable[..., T], request: HttpRequest | None, *paths: str) -> T:
    """Run one care service (given `request`, for its audit row) in English; its refusal is a
    422 naming the elements `paths`."""
    try:
        with translation.override("en"):
            return change(request=request)
    except (CareError, RecordError) as error:
        raise _refuse(f"{paths[0]}: {error}", *paths) from None


def save_task(
    caller: Caller,
    data: dict[str, Any],
    target: Any | None,
    patient: Patient | None,
    *,
    request: HttpRequest | None = None,
) -> Task:
    """Create the Task of `data`, or apply its changes to `target`, through the services."""
    if caller.kind == SYSTEM or caller.user is None:
        raise FhirHttpError(
            403,
            "Task changes are made in a person's name: use a clinician's token.",
            code="forbidden",
        )
    assert patient is not None  # noqa: S101 - savers.compartment resolved Task.for
    access = _access(caller.user, patient)
    _check_elements(data)
    if data.get("intent") != "order":
        raise _refuse(
            f"Task.intent must be 'order', not {data.get('intent')!r}.", "Task.intent", code="value"
        )
    if target is None:
        return _create(access, data, request)
    return _update(access, target, data, request)


def _access(user: User, patient: Patient) -> PatientAccess:
    """The writer's access to the patient (already checked by `savers.compartment`)."""
    try:
        return get_patient_for_user(user, patient.pk, action=None, what="care-task")
    except Http404:
        from .savers import Denied  # savers imports persist, which imports this module

        raise Denied("Patient", str(patient.fhir_id), patient_id=patient.pk) from None


def _check_elements(data: dict[str, Any]) -> None:
    unknown = sorted(set(data) - MAPPED_ELEMENTS - SERVER_ELEMENTS)
    if unknown:
        raise _refuse(
            f"Task.{unknown[0]} is not stored here (a Task carries code, description, for, "
            "basedOn, status, statusReason, priority, requester, owner, performerType, "
            "restriction.period.end, note and output).",
            *(f"Task.{name}" for name in unknown),
            code="not-supported",
        )


# ---------------------------------------------------------------------------------------------
# Reading the body


def _kind(data: dict[str, Any]) -> str:
    codings = (data.get("code") or {}).get("coding") or []
    codes = [c.get("code") for c in codings if c.get("system") == SYS_TASK_KIND]
    kinds = ", ".join(Task.Kind.values)
    if not codes:
        raise _refuse(
            f"Task.code needs a coding of {SYS_TASK_KIND} (the kind of task: {kinds}).",
            "Task.code",
            code="required",
        )
    if codes[0] not in Task.Kind.values:
        raise _refuse(
            f"Task.code {codes[0]!r} is not a kind of task of {SYS_TASK_KIND}: {kinds}.",
            "Task.code",
            code="code-invalid",
        )
    return str(codes[0])


def _title(data: dict[str, Any]) -> str:
    return " ".join(str(data.get("description") or "").split())


def _person_id(ref: dict[str, Any] | None, path: str) -> int | None:
    """The account behind a reference to one of our people, None when there is none."""
    if not ref:
        return None
    try:
        user_id = _user_id(ref)
    except FhirError:
        user_id = None
    if user_id is None or not User.objects.filter(pk=user_id).exists():
        raise _refuse(
            f"{path} must name a person of this hospital: Practitioner/<id> or the identifier "
            f"{SYS_USER}|<account id>.",
            path,
            code="value",
        )
    return user_id


def _owner(data: dict[str, Any]) -> tuple[User | None, str]:
    """(assignee, profession): the owner, else the profession of performerType[0]."""
    owner_id = _person_id(data.get("owner"), "Task.owner")
    if owner_id is not None:
        return User.objects.get(pk=owner_id), ""
    types = data.get("performerType") or []
    if not types:
        return None, ""
    codings = types[0].get("coding") or []
    roles = [c.get("code") for c in codings if c.get("system") == SYS_ROLE]
    if not roles:
        raise _refuse(
            f"Task.performerType[0] needs a coding of {SYS_ROLE} (the profession).",
            "Task.performerType",
            code="value",
        )
    return None, str(roles[0])


def _due(data: dict[str, Any]) -> dt.datetime | None:
    restriction = data.get("restriction") or {}
    extra = sorted(set(restriction) - {"period"}) + sorted(
        f"period.{k}" for k in set(restriction.get("period") or {}) - {"end"}
    )
    if extra:
        raise _refuse(
            f"Task.restriction.{extra[0]} is not stored here (only restriction.period.end, the "
            "due time).",
            f"Task.restriction.{extra[0]}",
            code="not-supported",
        )
    end = (restriction.get("period") or {}).get("end")
    try:
        return _datetime(end)
    except ValueError:
        raise _refuse(
            f"Task.restriction.period.end {end!r} is not a date and time.",
            "Task.restriction.period.end",
            code="value",
        ) from None


def _plan(data: dict[str, Any]) -> CarePlan | None:
    based_on = data.get("basedOn") or []
    if not based_on:
        return None
    if len(based_on) > 1:
        raise _refuse("Task.basedOn names one CarePlan at most.", "Task.basedOn", code="value")
    try:
        _type, fhir_id = _parse_reference(based_on[0].get("reference"), ("CarePlan",))
    except FhirError as error:
        raise _refuse(f"Task.basedOn: {error}.", "Task.basedOn", code="value") from None
    plan = CarePlan.objects.filter(fhir_id=fhir_id).first()
    if plan is None:  # savers.check_references saw it: only a race can get here
        raise _refuse(f"Task.basedOn: no CarePlan/{fhir_id}.", "Task.basedOn", code="value")
    return plan


def _notes(data: dict[str, Any], user: User, *, new_from: int = 0) -> list[str]:
    """The notes' texts; a new one (from index `new_from`) written by someone else than the
    token's person is a 422."""
    texts = []
    for index, note in enumerate(data.get("note") or []):
        path = f"Task.note[{index}]"
        if index >= new_from:
            author = _person_id(note.get("authorReference"), f"{path}.authorReference")
            if author is not None and author != user.pk:
                raise _refuse(
                    f"{path}.authorReference: new notes are written in the name of the "
                    "token's person.",
                    f"{path}.authorReference",
                )
        texts.append(str(note.get("text") or "").strip())
    return texts


def _stored_notes(task: Task) -> list[str]:
    """The texts of the stored notes, as `task_to_fhir` lists them (the instructions first)."""
    notes = [task.instructions] if task.instructions else []
    notes += [note.text for note in task.notes.order_by("created_at", "pk")]
    return [(text or "").strip() for text in notes]


def _report(data: dict[str, Any]) -> str:
    outputs = data.get("output") or []
    if len(outputs) > 1 or (outputs and "valueString" not in outputs[0]):
        raise _refuse(
            "Task.output holds one report at most, as output[0].valueString.",
            "Task.output",
            code="value",
        )
    return str(outputs[0]["valueString"]).strip() if outputs else ""


def _reason(data: dict[str, Any]) -> str:
    return " ".join(str((data.get("statusReason") or {}).get("text") or "").split())


# ---------------------------------------------------------------------------------------------
# Create


def _create(access: PatientAccess, data: dict[str, Any], request: HttpRequest | None) -> Task:
    user = access.user
    if data.get("status") != Task.Status.REQUESTED:
        raise _refuse(
            f"A new Task's status must be 'requested', not {data.get('status')!r}: it is "
            "started, put on hold, completed or cancelled by updating it.",
            "Task.status",
        )
    requester = _person_id(data.get("requester"), "Task.requester")
    if requester is not None and requester != user.pk:
        raise _refuse(
            "Task.requester must be the token's person (or left out): tasks are asked in the "
            "name of the clinician who writes them.",
            "Task.requester",
        )
    for name, path in (("statusReason", "Task.statusReason"), ("output", "Task.output")):
        if data.get(name):
            raise _refuse(f"{path} belongs to cancelling or completing a Task.", path)
    kind = _kind(data)
    title = _title(data)
    if not title:
        raise _refuse(
            "Task.description is required (the task's title).", "Task.description", code="required"
        )
    assignee, role = _owner(data)
    due_at = _due(data)
    plan = _plan(data)
    notes = _notes(data, user)
    task = _service(
        lambda **service: do_create_task(
            access,
            kind=kind,
            title=title,
            instructions=notes[0] if notes else "",
            assignee=assignee,
            assignee_role=role,
            priority=str(data.get("priority") or Task.Priority.ROUTINE),
            due_at=due_at,
            plan=plan,
            # an id the client chose (a PUT that creates, a Bundle's entry), else a new one
            fhir_id=data.get("id"),
            **service,
        ),
        request,
        "Task",
    )
    for index, text in enumerate(notes[1:], start=1):
        _service(partial(do_add_task_note, access, task, text), request, f"Task.note[{index}]")
    return task


# ---------------------------------------------------------------------------------------------
# Update


def _unchanged(task: Task, data: dict[str, Any]) -> None:
    """422 naming the first element that differs from the stored Task but may not change."""
    due = _due(data)
    plan = _plan(data)
    checks = (
        ("Task.code", _kind(data) == task.kind),
        ("Task.description", _title(data) == task.title),
        ("Task.basedOn", (plan.pk if plan else None) == task.plan_id),
        (
            "Task.requester",
            _person_id(data.get("requester"), "Task.requester") == task.requester_id,
        ),
        ("Task.priority", (data.get("priority") or Task.Priority.ROUTINE) == task.priority),
        ("Task.restriction", _same_time(due, task.due_at)),
    )
    for path, same in checks:
        if not same:
            raise _refuse(
                f"{path} cannot change: only the status (with its report or reason), the owner "
                "and new notes of a Task are changed through the API.",
                path,
            )


def _same_time(one: dt.datetime | None, other: dt.datetime | None) -> bool:
    """Equal to the second (clients may drop the fraction)."""
    if one is None or other is None:
        return one is other
    return one.replace(microsecond=0) == other.replace(microsecond=0)


def _update(
    access: PatientAccess, task: Task, data: dict[str, Any], request: HttpRequest | None
) -> Task:
    status = str(data.get("status"))
    if status not in STATUSES:
        raise _refuse(
            f"Task.status {status!r} is not used here: {', '.join(STATUSES)}.",
            "Task.status",
            code="value",
        )
    _unchanged(task, data)
    stored_status = task.status
    report, reason = _report(data), _reason(data)
    completing = status == Task.Status.COMPLETED and stored_status != Task.Status.COMPLETED
    cancelling = status == Task.Status.CANCELLED and stored_status != Task.Status.CANCELLED
    if report != (task.report or "").strip() and not completing:
        raise _refuse(
            "Task.output cannot change: the report is given when completing the task.",
            "Task.output",
        )
    if reason != task.cancel_reason and not cancelling:
        raise _refuse(
            "Task.statusReason cannot change: the reason is given when cancelling the task.",
            "Task.statusReason",
        )
    new_notes = _new_notes(access, task, data)
    _change_owner(access, task, data, request)
    if status not in (task.status, stored_status):
        _change_status(access, task, status, request, report=report, reason=reason)
    for index, text in new_notes:
        _service(partial(do_add_task_note, access, task, text), request, f"Task.note[{index}]")
    return task


def _new_notes(access: PatientAccess, task: Task, data: dict[str, Any]) -> list[tuple[int, str]]:
    """(index, text) of the notes added at the end; the stored ones must come back as they are."""
    stored = _stored_notes(task)
    sent = _notes(data, access.user, new_from=len(stored))
    if sent[: len(stored)] != stored:
        raise _refuse(
            "Task.note: the stored notes never change and are never removed (send them back as "
            "read); add new notes at the end.",
            "Task.note",
        )
    return list(enumerate(sent))[len(stored) :]


def _change_owner(
    access: PatientAccess, task: Task, data: dict[str, Any], request: HttpRequest | None
) -> None:
    assignee, role = _owner(data)
    if assignee is not None:
        if assignee.pk != task.assignee_id:
            _service(partial(do_assign_task, access, task, assignee), request, "Task.owner")
    elif task.assignee_id is not None or task.assignee_role != role:
        _service(partial(do_assign_task, access, task, None, role), request, "Task.owner")


def _change_status(
    access: PatientAccess,
    task: Task,
    status: str,
    request: HttpRequest | None,
    *,
    report: str,
    reason: str,
) -> None:
    if status == Task.Status.REQUESTED:
        if task.status in CLOSED_TASK_STATUSES:
            raise _refuse(
                f"Task.status: this task is {task.status}; a closed task is never reopened.",
                "Task.status",
            )
        raise _refuse(
            "Task.status goes back to requested only when the task is handed over (change "
            "its owner); resume a task on hold with in-progress.",
            "Task.status",
        )
    changes: dict[str, tuple[Callable[..., Task], tuple[str, ...]]] = {
        Task.Status.IN_PROGRESS: (partial(do_start_task, access, task), ()),
        Task.Status.ON_HOLD: (partial(do_put_on_hold, access, task), ()),
        Task.Status.COMPLETED: (
            partial(do_complete_task, access, task, report),
            ("Task.output",),
        ),
        Task.Status.CANCELLED: (
            partial(do_cancel_task, access, task, reason),
            ("Task.statusReason",),
        ),
    }
    change, also = changes[status]
    _service(change, request, "Task.status", *also)
