"""Care coordination in the patient timeline (`apps.records.timeline`).

- Care plans, dated by their creation: the patient (not the drafts the team is still writing)
  and the clinicians who may open the record.
- Tasks, staff only: dated by their completion once done (the work and its report are what
  happened), by their creation before; an open task past its due time is flagged.
- Signed meeting decisions, staff only, dated by the signature, linking to the archived PDF.
- Questionnaire responses, for the patient and the team, dated by the answer; a response with
  an answer the team must see is flagged.
- Decision-support proposals once a clinician accepted or dismissed them, staff only.

Dose reminders are not listed: one entry per dose (four a day) would drown everything else; the
adherence they build is drawn on the follow-up pages instead.

Each source's rows come from the care tables through the record's access (`PatientAccess`), so a
page costs the timeline's fixed number of queries however many entries it shows.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts.models import CLINICAL_ROLES, Role
from apps.records.access import PatientAccess
from apps.records.timeline import Source, register

from .models import CarePlan, MeetingDecision, Proposal, QuestionnaireResponse, Task


def _team(access: PatientAccess) -> bool:
    """A clinician who may open the record (care team or emergency access), not the patient."""
    return access.clinical and not access.is_patient_self and access.user.role in CLINICAL_ROLES


# ---------------------------------------------------------------------------------------------
# Care plans


def _plans(access: PatientAccess) -> QuerySet[CarePlan]:
    if access.is_patient_self:
        return CarePlan.objects.filter(patient=access.patient).exclude(status=CarePlan.Status.DRAFT)
    if _team(access):
        return CarePlan.objects.filter(patient=access.patient)
    return CarePlan.objects.none()


def _describe_plan(plan: CarePlan, access: PatientAccess) -> tuple[str, str, str, str]:
    parts = [str(plan.get_status_display()).capitalize()]
    if plan.pathway is not None:
        parts.append(plan.pathway.display_name())
    if plan.coordinator is not None:
        parts.append(_("coordinated by %(name)s") % {"name": plan.coordinator.get_full_name()})
    return plan.title, " · ".join(parts), reverse("care:plan", args=[plan.pk]), ""


register(
    Source(
        "care-plan",
        gettext_lazy("Care plan"),
        _plans,
        "created_at",
        _describe_plan,
        related=("pathway", "coordinator"),
    )
)


# ---------------------------------------------------------------------------------------------
# Tasks


def _tasks(access: PatientAccess) -> QuerySet[Task]:
    # The date is annotated on the empty queryset too: the timeline's UNION names it.
    tasks = Task.objects.filter(patient=access.patient) if _team(access) else Task.objects.none()
    return tasks.annotate(tl_date=Coalesce("completed_at", "created_at"))


def _describe_task(task: Task, access: PatientAccess) -> tuple[str, str, str, str]:
    parts = [str(task.get_kind_display()).capitalize(), str(task.get_status_display())]
    if task.status == Task.Status.COMPLETED and task.completed_by is not None:
        parts.append(_("done by %(name)s") % {"name": task.completed_by.get_full_name()})
    elif task.assignee is not None:
        parts.append(_("for %(name)s") % {"name": task.assignee.get_full_name()})
    elif task.assignee_role:
        role = dict(Role.choices).get(task.assignee_role, task.assignee_role)
        parts.append(_("for a %(role)s") % {"role": str(role).lower()})
    overdue = task.is_overdue()
    if overdue:
        parts.append(_("overdue"))
    url = reverse("care:task", args=[task.pk])
    return task.title, " · ".join(parts), url, "H" if overdue else ""


register(
    Source(
        "care-task",
        gettext_lazy("Task"),
        _tasks,
        "tl_date",
        _describe_task,
        related=("assignee", "completed_by"),
    )
)


# ---------------------------------------------------------------------------------------------
# Meeting decisions


def _decisions(access: PatientAccess) -> QuerySet[MeetingDecision]:
    if not _team(access):
        return MeetingDecision.objects.none()
    return MeetingDecision.objects.filter(patient=access.patient, signed_at__isnull=False)


def _describe_decision(
    decision: MeetingDecision, access: PatientAccess
) -> tuple[str, str, str, str]:
    meeting = decision.case.meeting
    parts = [decision.case.question]
    if decision.signed_by is not None:
        parts.append(_("signed by %(name)s") % {"name": decision.signed_by.get_full_name()})
    url = ""
    if decision.document_id is not None:
        url = reverse("records:document_download", args=[decision.document_id])
    return meeting.title, " · ".join(parts), url, ""


register(
    Source(
        "care-decision",
        gettext_lazy("Meeting decision"),
        _decisions,
        "signed_at",
        _describe_decision,
        related=("case__meeting", "signed_by"),
    )
)


# ---------------------------------------------------------------------------------------------
# Questionnaire responses


def _responses(access: PatientAccess) -> QuerySet[QuestionnaireResponse]:
    if access.is_patient_self or _team(access):
        return QuestionnaireResponse.objects.filter(patient=access.patient)
    return QuestionnaireResponse.objects.none()


def _describe_response(
    response: QuestionnaireResponse, access: PatientAccess
) -> tuple[str, str, str, str]:
    if access.is_patient_self:
        url = reverse("care:my_care")
    else:
        url = reverse("care:patient_followup", args=[access.patient.pk])
    if response.flagged:
        return response.questionnaire.display_title(), _("an answer needs attention"), url, "H"
    return response.questionnaire.display_title(), _("answered"), url, ""


register(
    Source(
        "questionnaire",
        gettext_lazy("Questionnaire"),
        _responses,
        "authored_at",
        _describe_response,
        related=("questionnaire",),
    )
)


# ---------------------------------------------------------------------------------------------
# Decision support


def _proposals(access: PatientAccess) -> QuerySet[Proposal]:
    if not _team(access):
        return Proposal.objects.none()
    decided = (Proposal.Status.ACCEPTED, Proposal.Status.DISMISSED)
    return Proposal.objects.filter(
        patient=access.patient, status__in=decided, decided_at__isnull=False
    )


def _describe_proposal(proposal: Proposal, access: PatientAccess) -> tuple[str, str, str, str]:
    parts = [str(proposal.get_status_display()).capitalize()]
    if proposal.decided_by is not None:
        parts.append(_("by %(name)s") % {"name": proposal.decided_by.get_full_name()})
    if proposal.dismiss_reason:
        parts.append(proposal.dismiss_reason)
    url = reverse("care:patient_proposals", args=[access.patient.pk])
    return proposal.rule.display_title(), " · ".join(parts), url, ""


register(
    Source(
        "care-proposal",
        gettext_lazy("Decision support"),
        _proposals,
        "decided_at",
        _describe_proposal,
        related=("rule", "decided_by"),
    )
)
