"""The team's triage of a conversation: assign it, mark it urgent, resolve or reopen it.

Each change is audited and pushed live to everyone who can see the thread.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core.realtime import send_events_on_commit

from ..access import ThreadAccess
from ..models import Thread
from . import MessagingError
from .threads import (
    join_thread,
    refresh_thread,
    team_members,
    thread_changed_events,
    thread_url,
    viewers,
)


def _check_team(access: ThreadAccess) -> None:
    if not access.is_staff:
        raise MessagingError(_("Only the care team can do this."))


def _change(
    access: ThreadAccess,
    request: HttpRequest | None,
    what: str,
    apply: Any,
    **detail: Any,
) -> Thread:
    _check_team(access)
    with transaction.atomic():
        thread = (
            Thread.objects.select_for_update(of=("self",))
            .select_related("patient__user")
            .get(pk=access.thread.pk)
        )
        fields = apply(thread)
        if not fields:
            return thread
        thread.save(update_fields=fields)
        audit(
            Action.UPDATE,
            request=request,
            actor=access.user,
            obj=thread,
            patient_id=str(thread.patient_id),
            detail=access.audit_detail(what=what, **detail),
        )
        people = viewers(thread)
        send_events_on_commit(thread_changed_events(thread, people, unread=what != "urgency"))
    refresh_thread(access.thread, thread)
    return thread


def do_assign(
    access: ThreadAccess, assignee_id: Any, *, request: HttpRequest | None = None
) -> Thread:
    """Assign the thread to a clinician of the care team (or to nobody)."""
    assignee = None
    if assignee_id not in (None, ""):
        team = {member.pk: member for member in team_members(access.thread)}
        assignee = team.get(int(assignee_id)) if str(assignee_id).isdigit() else None
        if assignee is None:
            raise MessagingError(_("Only a clinician of the patient's care team can be assigned."))

    def apply(thread: Thread) -> list[str]:
        if thread.assignee_id == (assignee.pk if assignee else None):
            return []
        thread.assignee = assignee
        if assignee is not None:
            join_thread(thread, assignee)
        return ["assignee"]

    thread = _change(access, request, "assign", apply, assignee=assignee.pk if assignee else None)
    if assignee is not None and assignee.pk != access.user.pk:
        from apps.notifications.services import notify

        with (
            transaction.atomic(),
            translation.override(assignee.preferred_language or settings.LANGUAGE_CODE),
        ):
            notify(
                assignee,
                "message",
                _("A conversation was assigned to you"),
                "",
                thread_url(thread, assignee),
                ref=f"messaging.thread:{thread.pk}",
            )
    return thread


def do_set_urgency(
    access: ThreadAccess, urgency: str, *, request: HttpRequest | None = None
) -> Thread:
    if urgency not in Thread.Urgency.values:
        raise MessagingError(_("Choose routine or urgent."))

    def apply(thread: Thread) -> list[str]:
        if thread.urgency == urgency:
            return []
        thread.urgency = urgency
        return ["urgency"]

    return _change(access, request, "urgency", apply, urgency=urgency)


def do_resolve(access: ThreadAccess, *, request: HttpRequest | None = None) -> Thread:
    def apply(thread: Thread) -> list[str]:
        if thread.state == Thread.State.RESOLVED:
            return []
        thread.state = Thread.State.RESOLVED
        thread.resolved_at = timezone.now()
        thread.resolved_by = access.user
        thread.response_due_at = None
        return ["state", "resolved_at", "resolved_by", "response_due_at"]

    return _change(access, request, "resolve", apply)


def do_reopen(access: ThreadAccess, *, request: HttpRequest | None = None) -> Thread:
    def apply(thread: Thread) -> list[str]:
        if thread.state == Thread.State.OPEN:
            return []
        thread.state = Thread.State.OPEN
        thread.resolved_at = None
        thread.resolved_by = None
        return ["state", "resolved_at", "resolved_by"]

    return _change(access, request, "reopen", apply)
