"""A meeting's decision on a case: recorded (and edited) during the meeting by the chair or
the presenter, then signed by the chair.

Signing is one transaction: the attendance is frozen into the decision, a SHA-256 signature
is computed over a canonical JSON of the signed content, the PDF is rendered and stored in
the patient's record (a DocumentReference), and ONE save sets the signature fields — after
which the model refuses any save and a PostgreSQL trigger any UPDATE or DELETE of the row.
The follow-up actions then become activities of the patient's open care plan (a plan titled
after the meeting is created when there is none) and tasks, written with the signer's record
access (without it, signing is refused: the chair must be able to act on the record).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any
from zoneinfo import ZoneInfo

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import PatientAccess, check_patient_access
from apps.records.models import DocumentReference, Sensitivity
from apps.records.services import RecordError
from apps.records.services.documents import StoredFile, store_file

from ..models import (
    ActivityKind,
    CarePlan,
    Meeting,
    MeetingCase,
    MeetingDecision,
    MeetingParticipant,
    Origin,
    TaskKind,
)
from . import CareError
from .meeting_pdf import decision_pdf
from .meetings import meeting_event, meeting_url
from .plans import do_add_activity, do_create_plan, open_plans
from .tasks import do_create_task, team_user_ids

ZONE = ZoneInfo("Europe/Zurich")
TEXT_MAX = 10_000
ACTION_TITLE_MAX = 200
MAX_ACTIONS = 20
MAX_DUE_DAYS = 365
# Follow-up tasks are due at 09:00 (Zurich) on their day.
DUE_TIME = dt.time(9, 0)

DECIDING = (Meeting.Status.IN_PROGRESS, Meeting.Status.CLOSED)

# What each kind of task becomes in the care plan.
ACTIVITY_KINDS = {
    TaskKind.VISIT: ActivityKind.APPOINTMENT,
    TaskKind.EXAM: ActivityKind.APPOINTMENT,
    TaskKind.EDUCATION: ActivityKind.EDUCATION,
    TaskKind.MEDICATION_REVIEW: ActivityKind.MEDICATION,
}


# ---------------------------------------------------------------------------------------------
# Follow-up actions


def clean_actions(patient_id: int, actions: Any) -> list[dict[str, Any]]:
    """Validate the follow-up list (see MeetingDecision.actions) and return its clean form.

    Each action: a title, a kind of task, either an assignee on the patient's current care
    team or a clinical profession, and a delay in days (0 to 365).
    """
    if not isinstance(actions, list):
        raise CareError(_("The follow-up actions are a list."))
    if len(actions) > MAX_ACTIONS:
        raise CareError(_("At most 20 follow-up actions per decision."))
    team = set(team_user_ids(patient_id))
    clean = []
    for number, action in enumerate(actions, start=1):
        if not isinstance(action, dict):
            raise CareError(_("Follow-up action %(n)s is not valid.") % {"n": number})
        clean.append(_clean_action(number, action, team))
    return clean


def _clean_action(number: int, action: dict[str, Any], team: set[int]) -> dict[str, Any]:
    def refuse(message: str) -> CareError:
        return CareError(
            _("Follow-up action %(n)s: %(problem)s") % {"n": number, "problem": message}
        )

    title = " ".join(str(action.get("title") or "").split())
    if not title:
        raise refuse(_("give it a title."))
    if len(title) > ACTION_TITLE_MAX:
        raise refuse(_("the title is too long (200 characters at most)."))
    kind = action.get("kind")
    if kind not in TaskKind.values:
        raise refuse(_("choose a kind of task."))
    assignee, role = action.get("assignee"), str(action.get("role") or "")
    if assignee in ("", None):
        assignee = None
    elif not str(assignee).isdigit() or int(assignee) not in team:
        raise refuse(_("the person in charge must be on the patient's care team."))
    else:
        assignee = int(assignee)
    if assignee is None and role not in CLINICAL_ROLES:
        raise refuse(_("choose who does it: a member of the care team or a profession."))
    due_days = action.get("due_days")
    if isinstance(due_days, str) and due_days.strip().isdigit():
        due_days = int(due_days)
    if not isinstance(due_days, int) or isinstance(due_days, bool):
        raise refuse(_("give the delay in days."))
    if not 0 <= due_days <= MAX_DUE_DAYS:
        raise refuse(_("the delay is 0 to 365 days."))
    return {
        "title": title,
        "kind": kind,
        "assignee": assignee,
        "role": "" if assignee is not None else role,
        "due_days": due_days,
    }


def check_decider(user: User, case: MeetingCase) -> None:
    if user.pk not in (case.meeting.chair_id, case.presented_by_id):
        raise CareError(_("Only the chair or the presenter of the case records its decision."))


# ---------------------------------------------------------------------------------------------
# Recording


def do_record_decision(
    user: User,
    case: MeetingCase,
    text: str,
    actions: Any = (),
    *,
    request: HttpRequest | None = None,
) -> MeetingDecision:
    """Write (or rewrite) the decision on a case, while it is not signed."""
    check_decider(user, case)
    meeting = case.meeting
    if meeting.status not in DECIDING:
        raise CareError(_("Decisions are recorded once the meeting has started."))
    text = (text or "").replace("\r\n", "\n").strip()
    if not text:
        raise CareError(_("Write the decision."))
    if len(text) > TEXT_MAX:
        raise CareError(_("The decision is too long (10000 characters at most)."))
    clean = clean_actions(case.patient_id, list(actions))
    with transaction.atomic():
        decision = MeetingDecision.objects.select_for_update().filter(case=case).first()
        if decision is not None and decision.is_signed:
            raise CareError(_("This decision is signed: it can no longer be changed."))
        created = decision is None
        if decision is None:
            decision = MeetingDecision(case=case, patient_id=case.patient_id)
        decision.text, decision.actions = text, clean
        decision.recorded_by, decision.recorded_at = user, timezone.now()
        decision.save()
        audit(
            Action.CREATE if created else Action.UPDATE,
            request=request,
            actor=user,
            obj=decision,
            patient_id=str(case.patient_id),
            detail={"what": "meeting decision", "meeting": meeting.pk, "actions": len(clean)},
        )
        meeting_event(meeting, case)
    return decision


# ---------------------------------------------------------------------------------------------
# Signing


def signed_content(decision: MeetingDecision) -> dict[str, Any]:
    """What the signature covers, as plain JSON values."""
    case = decision.case
    return {
        "meeting": case.meeting_id,
        "case": case.pk,
        "patient": decision.patient_id,
        "question": case.question,
        "text": decision.text,
        "actions": decision.actions,
        "attendees": decision.attendees,
        "signed_by": decision.signed_by_id,
        "signed_at": decision.signed_at.isoformat() if decision.signed_at else None,
    }


def compute_signature(decision: MeetingDecision) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces, UTF-8) of the signed content."""
    canonical = json.dumps(
        signed_content(decision), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def verify_signature(decision: MeetingDecision) -> bool:
    return decision.is_signed and compute_signature(decision) == decision.signature


def _attendees(meeting: Meeting) -> list[dict[str, Any]]:
    seats = (
        MeetingParticipant.objects.filter(meeting=meeting, attended=True)
        .select_related("user")
        .order_by("user__last_name", "user__first_name", "user_id")
    )
    return [
        {"id": seat.user_id, "name": seat.user.get_full_name(), "profession": seat.user.role_label}
        for seat in seats
    ]


def document_title(meeting: Meeting, moment: dt.datetime) -> str:
    return (
        _("MDT decision — %(meeting)s — %(date)s")
        % {"meeting": meeting.title, "date": date_format(moment.astimezone(ZONE), "d.m.Y")}
    )[:200]


def signer_access(user: User, case: MeetingCase) -> PatientAccess:
    """The chair's clinical access to the case's patient (the follow-up is written with it)."""
    access = check_patient_access(user, case.patient_id)
    if access is None or access.is_patient_self:
        raise CareError(
            _(
                "You do not have access to this patient's record: ask a member of their care "
                "team to chair the decision, or get access first."
            )
        )
    return access


def do_sign_decision(
    user: User, case: MeetingCase, *, request: HttpRequest | None = None
) -> MeetingDecision:
    """The chair signs the decision: frozen, archived as a PDF, turned into follow-up work."""
    meeting = case.meeting
    if meeting.chair_id != user.pk:
        raise CareError(_("Only the chair of the meeting signs its decisions."))
    if meeting.status not in DECIDING:
        raise CareError(_("Decisions are signed during or after the meeting."))
    access = signer_access(user, case)
    stored: list[StoredFile] = []
    try:
        with transaction.atomic():
            decision = MeetingDecision.objects.select_for_update().filter(case=case).first()
            if decision is None:
                raise CareError(_("Record the decision before signing it."))
            if decision.is_signed:
                raise CareError(_("This decision is already signed."))
            decision.case = case
            # The team may have changed since the decision was written: check again.
            decision.actions = clean_actions(case.patient_id, decision.actions)
            decision.attendees = _attendees(meeting)
            if not decision.attendees:
                raise CareError(_("Record who is present before signing."))
            decision.signed_by, decision.signed_at = user, timezone.now()
            decision.signature = compute_signature(decision)
            decision.document = _archive(access, decision, stored, request)
            decision.save(
                update_fields=[
                    "actions",
                    "attendees",
                    "signed_by",
                    "signed_at",
                    "signature",
                    "document",
                ]
            )
            audit(
                Action.UPDATE,
                request=request,
                actor=user,
                obj=decision,
                patient_id=str(case.patient_id),
                detail=access.audit_detail(
                    what="meeting decision",
                    signed=True,
                    signature=decision.signature,
                    document=decision.document.pk,
                ),
            )
            _follow_up(access, decision, request)
            case.status = MeetingCase.Status.DECIDED
            case.save(update_fields=["status"])
            meeting_event(meeting, case)
    except BaseException:
        # The PDF was written to disk before the rollback: no orphan file is left behind.
        for item in stored:
            item.discard()
        raise
    return decision


def _archive(
    access: PatientAccess,
    decision: MeetingDecision,
    stored: list[StoredFile],
    request: HttpRequest | None,
) -> DocumentReference:
    """The signed decision's PDF, stored encrypted in the patient's record."""
    case = decision.case
    with translation.override(access.patient.preferred_language or None):
        content = decision_pdf(decision)
        title = document_title(case.meeting, decision.signed_at or timezone.now())
    try:
        stored.append(store_file(content, f"decision-rcp-{case.meeting_id}-{case.pk}.pdf"))
    except RecordError as error:
        raise CareError(str(error)) from None
    document = DocumentReference.objects.create(
        patient=access.patient,
        title=title,
        category=DocumentReference.Category.REPORT,
        sensitivity=Sensitivity.NORMAL,
        recorded_by=access.user,
        **stored[-1].fields(),
    )
    audit(
        Action.CREATE,
        request=request,
        actor=access.user,
        obj=document,
        patient_id=str(access.patient.pk),
        detail=access.audit_detail(
            what="document", size=document.size, meeting_decision=decision.pk
        ),
    )
    return document


def _due_date(days: int) -> dt.date:
    return timezone.localdate() + dt.timedelta(days=days)


def _plan_for(access: PatientAccess, meeting: Meeting, request: HttpRequest | None) -> CarePlan:
    plan = open_plans(access.patient.pk).order_by("-created_at", "-pk").first()
    if plan is not None:
        return plan
    return do_create_plan(
        access,
        title=meeting.title,
        description="",
        start_date=timezone.localdate(),
        coordinator=None,
        follow_up_days=None,
        request=request,
    )


def _follow_up(
    access: PatientAccess, decision: MeetingDecision, request: HttpRequest | None
) -> None:
    """Each action: an activity of the open care plan and its task (origin: the meeting)."""
    if not decision.actions:
        return
    meeting = decision.case.meeting
    plan = _plan_for(access, meeting, request)
    people = {
        person.pk: person
        for person in User.objects.filter(
            pk__in=[a["assignee"] for a in decision.actions if a["assignee"]]
        )
    }
    reference = _("Decided by the meeting “%(title)s” on %(date)s.") % {
        "title": meeting.title,
        "date": date_format((decision.signed_at or timezone.now()).astimezone(ZONE), "d.m.Y"),
    }
    for action in decision.actions:
        assignee = people.get(action["assignee"]) if action["assignee"] else None
        due = _due_date(action["due_days"])
        activity = do_add_activity(
            access,
            plan,
            title=action["title"],
            kind=ACTIVITY_KINDS.get(action["kind"], ActivityKind.TASK),
            detail=reference,
            responsible=assignee,
            responsible_role=action["role"],
            due_date=due,
            origin=Origin.MEETING,
            request=request,
        )
        do_create_task(
            access,
            kind=action["kind"],
            title=action["title"],
            instructions=f"{reference}\n{meeting_url(meeting)}",
            assignee=assignee,
            assignee_role=action["role"],
            due_at=dt.datetime.combine(due, DUE_TIME, tzinfo=ZONE).astimezone(dt.UTC),
            plan=plan,
            activity=activity,
            origin=Origin.MEETING,
            request=request,
        )
