"""Who may see a conversation; every read and every refusal is audited.

- A patient sees their own conversations, never the staff-only discussions about them.
- A clinician sees every conversation of the patients whose care team they are on, staff-only
  discussions included. An emergency (break-the-glass) access opens the record, not the
  patient's messages: it is no reason to join their conversations.
- Billing staff, administrators and everybody else: nothing (404).

The patient side of the rule is the records app's (`check_patient_access`), so a clinician
taken off the care team loses the messages with the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import Via, check_patient_access, deny, patients_for_user

from .models import Attachment, Message, Thread

PATIENT_SIDE = "patient"
TEAM_SIDE = "team"


@dataclass(frozen=True)
class ThreadAccess:
    """What `user` may do in `thread`."""

    thread: Thread
    user: User

    @property
    def is_patient(self) -> bool:
        return self.user.role == Role.PATIENT

    @property
    def is_staff(self) -> bool:
        return not self.is_patient

    @property
    def side(self) -> str:
        return PATIENT_SIDE if self.is_patient else TEAM_SIDE

    def audit_detail(self, **extra: Any) -> dict[str, Any]:
        return {"thread": self.thread.pk, "side": self.side, **extra}


def thread_access(user: User, thread: Thread) -> ThreadAccess | None:
    """The access `user` has to `thread`, or None (nothing is audited here)."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.role == Role.PATIENT:
        if thread.staff_only or thread.patient.user_id != user.pk:
            return None
        return ThreadAccess(thread, user)
    if user.role in CLINICAL_ROLES:
        access = check_patient_access(user, thread.patient_id)
        if access is not None and access.via == Via.CARE_TEAM:
            return ThreadAccess(thread, user)
    return None


def threads_for_user(user: User) -> QuerySet[Thread]:
    """The conversations `user` may see (what the inboxes list)."""
    if not user.is_authenticated or not user.is_active:
        return Thread.objects.none()
    if user.role == Role.PATIENT:
        return Thread.objects.filter(patient__user=user, staff_only=False)
    if user.role in CLINICAL_ROLES:
        return Thread.objects.filter(patient__in=patients_for_user(user).values("pk"))
    return Thread.objects.none()


def get_thread_for_user(
    user: User,
    thread_id: Any,
    *,
    request: HttpRequest | None = None,
    what: str = "thread",
    action: str | None = Action.READ,
) -> ThreadAccess:
    """The thread's access for `user`, or Http404 (audited either way).

    `action=None` skips the "read" row: the caller is a write service that audits its change.
    """
    thread = None
    if str(thread_id).isdigit():
        thread = Thread.objects.select_related("patient__user").filter(pk=thread_id).first()
    access = thread_access(user, thread) if thread is not None else None
    if access is None:
        raise deny(
            user,
            request=request,
            what=what,
            object_type="messaging.thread",
            object_id=thread_id,
            patient_id=thread.patient_id if thread is not None else "",
        )
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=access.thread,
            patient_id=str(access.thread.patient_id),
            detail=access.audit_detail(what=what),
        )
    return access


def get_message_for_user(
    user: User, message_id: Any, *, request: HttpRequest | None = None, what: str = "message"
) -> tuple[Message, ThreadAccess]:
    """One message through its thread's access, or Http404 (audited either way)."""
    message = None
    if str(message_id).isdigit():
        message = Message.objects.filter(pk=message_id).only("pk", "thread_id").first()
    if message is None:
        raise deny(
            user, request=request, what=what, object_type="messaging.message", object_id=message_id
        )
    access = get_thread_for_user(user, message.thread_id, request=request, what=what)
    message = Message.objects.select_related("author").get(pk=message.pk)
    return message, access


def get_attachment_for_user(
    user: User, attachment_id: Any, *, request: HttpRequest | None = None
) -> tuple[Attachment, ThreadAccess]:
    """One attached file through its thread's access, or Http404 (audited either way)."""
    attachment = None
    if str(attachment_id).isdigit():
        attachment = Attachment.objects.select_related("message").filter(pk=attachment_id).first()
    if attachment is None:
        raise deny(
            user,
            request=request,
            what="attachment",
            object_type="messaging.attachment",
            object_id=attachment_id,
        )
    access = get_thread_for_user(
        user, attachment.message.thread_id, request=request, what="attachment", action=None
    )
    audit(
        Action.READ,
        request=request,
        actor=user,
        obj=attachment,
        patient_id=str(access.thread.patient_id),
        detail=access.audit_detail(what="attachment"),
    )
    return attachment, access


def audit_listing(
    user: User, threads: list[Thread], *, request: HttpRequest | None, what: str
) -> None:
    """One audit row for a page of conversations shown in a list (names and subjects)."""
    patients = {thread.patient_id for thread in threads}
    audit(
        Action.READ,
        request=request,
        actor=user,
        object_type="messaging.thread",
        patient_id=str(next(iter(patients))) if len(patients) == 1 else "",
        detail={"what": what, "count": len(threads), "patients": len(patients)},
    )
