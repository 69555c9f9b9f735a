"""Conversations in the patient timeline: one entry per thread, dated by its last message.

The messaging access rule applies, not only the record's: the patient sees their own
conversations but never the staff-only discussions about them; the care team sees all of them;
an emergency (break-the-glass) access, billing staff and everybody else see none.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext

from apps.accounts.models import CLINICAL_ROLES
from apps.records.access import PatientAccess, Via
from apps.records.timeline import Source, register

from .models import Thread
from .services.threads import thread_url


def _threads(access: PatientAccess) -> QuerySet[Thread]:
    if not access.clinical:
        return Thread.objects.none()
    if access.is_patient_self:
        return Thread.objects.filter(patient=access.patient, staff_only=False)
    if access.via == Via.CARE_TEAM and access.user.role in CLINICAL_ROLES:
        return Thread.objects.filter(patient=access.patient)
    return Thread.objects.none()


def _describe(thread: Thread, access: PatientAccess) -> tuple[str, str, str, str]:
    count = thread.message_count
    parts = [
        str(thread.get_topic_display()),
        ngettext("%(n)s message", "%(n)s messages", count) % {"n": count},
    ]
    if thread.staff_only:
        parts.append(_("staff only"))
    if thread.urgency == Thread.Urgency.URGENT:
        parts.append(_("urgent"))
    if thread.state == Thread.State.RESOLVED:
        parts.append(pgettext("conversation state", "resolved"))
    return thread.subject, " · ".join(parts), thread_url(thread, access.user), ""


register(
    Source(
        "conversation",
        gettext_lazy("Conversation"),
        _threads,
        "last_message_at",
        _describe,
    )
)
