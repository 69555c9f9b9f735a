"""Decision-support pages: the chart's "Decision support" tab (open proposals with their reason
and data, accept or dismiss, then the decided ones), "Check again now", the clinic-wide list of
open proposals of my patients, and the fragments live updates fetch.

Clinicians of the patient's record only: everyone else gets 404 and the refusal is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import PatientAccess, deny, get_patient_for_user, patients_for_user
from apps.records.models import CareTeamMember, Patient
from apps.records.views.common import render_chart

from .access import get_proposal_for_user, is_clinician
from .forms_support import AcceptForm, DismissForm
from .models import Proposal, Rule
from .services import CareError
from .services.support.engine import evaluate_patient
from .services.support.proposals import do_accept_proposal, do_dismiss_proposal, render_reason

PAGE_SIZE = 20
SEVERITY_RANK = Case(
    When(rule__severity=Rule.Severity.CRITICAL, then=Value(0)),
    When(rule__severity=Rule.Severity.WARNING, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)
SEVERITY_TAGS: dict[str, str] = {
    Rule.Severity.CRITICAL: "tag-urgent",
    Rule.Severity.WARNING: "tag-overdue",
    Rule.Severity.INFO: "tag-awaiting",
}


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _language() -> str:
    return (get_language() or "fr")[:2]


def _text(value: Any) -> str:
    """A value of the evidence: plain, or {language: text}."""
    if isinstance(value, dict):
        language = _language()
        return str(value.get(language) or value.get("fr") or "")
    return "" if value is None else str(value)


def _patient_access(
    request: HttpRequest, patient_pk: int, what: str, action: str | None = Action.READ
) -> PatientAccess:
    """Clinical access to the patient's record for a clinician, or 404 (audited)."""
    user = _user(request)
    if not is_clinician(user):
        exists = Patient.objects.filter(pk=patient_pk).exists()
        raise deny(
            user,
            request=request,
            what=what,
            object_id=patient_pk,
            patient_id=patient_pk if exists else "",
        )
    return get_patient_for_user(user, patient_pk, request=request, what=what, action=action)


# ---------------------------------------------------------------------------------------------
# What a proposal shows


@dataclass
class ProposalView:
    proposal: Proposal
    reason: str
    title: str
    tag: str
    observations: list[dict[str, Any]]
    observations_total: int
    medications: list[dict[str, Any]]
    allergies: list[dict[str, Any]]
    facts: list[tuple[str, str]]
    chart: dict[str, Any] | None
    chart_id: str
    accept_form: AcceptForm | None = None
    dismiss_form: DismissForm | None = None

    @property
    def is_task(self) -> bool:
        return self.proposal.rule.action == Rule.Action.TASK


def _facts(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    patient = evidence.get("patient", {})
    facts = []
    if "age" in patient:
        facts.append((_("Age"), _("%(n)s years") % {"n": patient["age"]}))
    if "weight" in patient:
        facts.append((_("Weight"), f"{patient['weight']['kg']:g} kg"))
    if "egfr" in patient:
        egfr = patient["egfr"]
        source = _("from creatinine (CKD-EPI 2021)") if egfr["from"] == "creatinine" else ""
        facts.append((_("eGFR"), f"{egfr['egfr']:g} mL/min/1.73 m² {source}".strip()))
    return facts


def proposal_view(proposal: Proposal) -> ProposalView:
    evidence = proposal.evidence
    series = evidence.get("series")
    chart = None
    if series and series.get("days"):
        chart = {
            "label": f"{_text(series['label'])} ({series['unit']})",
            "unit": series["unit"],
            "target": series.get("target"),
            "target_label": _("target"),
            "mean_label": _("daily mean"),
            "points": [{"t": day["date"], "v": day["mean"]} for day in series["days"]],
        }
    observations = [
        {**obs, "label": _text(obs["label"]), "at": parse_datetime(obs["at"])}
        for obs in evidence.get("observations", [])
    ]
    medications = [
        {**med, "since": parse_date(med["since"]) if med.get("since") else None}
        for med in evidence.get("medications", [])
    ]
    allergies = [
        {**allergy, "substance": _text(allergy["substance"])}
        for allergy in evidence.get("allergies", [])
    ]
    rule = proposal.rule
    return ProposalView(
        proposal=proposal,
        reason=render_reason(proposal, _language()),
        title=rule.display_title(_language()),
        tag=SEVERITY_TAGS.get(rule.severity, "tag-awaiting"),
        observations=observations,
        observations_total=evidence.get("observations_total", len(observations)),
        medications=medications,
        allergies=allergies,
        facts=_facts(evidence),
        chart=chart,
        chart_id=f"proposal-series-{proposal.pk}",
    )


def _team(patient: Patient) -> list[User]:
    members = (
        CareTeamMember.objects.filter(
            care_team__patient=patient,
            care_team__active=True,
            ended_at__isnull=True,
            user__is_active=True,
            user__role__in=CLINICAL_ROLES,
        )
        .select_related("user")
        .order_by("user__last_name", "user__first_name", "user_id")
    )
    team: dict[int, User] = {}
    for member in members:
        team.setdefault(member.user_id, member.user)
    return list(team.values())


def _with_forms(view: ProposalView, team: list[User], me: User) -> ProposalView:
    prefix = f"p{view.proposal.pk}"
    if view.proposal.status == Proposal.Status.OPEN:
        view.accept_form = AcceptForm(team=team, me=me, prefix=prefix) if view.is_task else None
        view.dismiss_form = DismissForm(prefix=prefix)
    return view


def _open(patient: Patient) -> QuerySet[Proposal]:
    return (
        Proposal.objects.filter(patient=patient, status=Proposal.Status.OPEN)
        .select_related("rule")
        .order_by(SEVERITY_RANK, "-created_at", "-pk")
    )


# ---------------------------------------------------------------------------------------------
# Pages


@require_GET
@login_required
def patient_proposals(request: HttpRequest, patient_pk: int) -> HttpResponse:
    access = _patient_access(request, patient_pk, "decision-support proposals")
    user = _user(request)
    team = _team(access.patient)
    open_views = [_with_forms(proposal_view(p), team, user) for p in _open(access.patient)]
    decided = (
        Proposal.objects.filter(patient=access.patient)
        .exclude(status=Proposal.Status.OPEN)
        .select_related("rule", "decided_by", "task", "prescription")
        .order_by("-decided_at", "-pk")
    )
    page = Paginator(decided, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "open_views": open_views,
        "page": page,
        "decided_views": [proposal_view(p) for p in page],
        "fragment_url": reverse("care:proposal", args=[0]),
    }
    return render_chart(
        request, access, "care-proposals", "care/support/patient_proposals.html", context
    )


@require_POST
@login_required
def patient_proposals_check(request: HttpRequest, patient_pk: int) -> HttpResponse:
    """Run the rules on this patient now (the scheduled run does it every 15 minutes)."""
    access = _patient_access(request, patient_pk, "decision-support check")
    made = evaluate_patient(access.patient)
    if made:
        messages.success(
            request,
            ngettext("%(n)s new proposal.", "%(n)s new proposals.", len(made)) % {"n": len(made)},
        )
    else:
        messages.info(request, _("Checked: nothing new to propose."))
    return redirect("care:patient_proposals", access.patient.pk)


def _decided_page(proposal: Proposal) -> str:
    return (
        reverse("care:patient_proposals", args=[proposal.patient_id]) + f"#proposal-{proposal.pk}"
    )


@require_POST
@login_required
def proposal_accept(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    proposal, access = get_proposal_for_user(
        user, pk, request=request, action=None, queryset=Proposal.objects.select_related("rule")
    )
    form = AcceptForm(request.POST, team=_team(access.patient), me=user, prefix=f"p{pk}")
    if not form.is_valid():
        messages.error(request, _("Choose who takes the task from the care team."))
        return redirect(_decided_page(proposal))
    try:
        decided = do_accept_proposal(
            access, proposal, assignee=form.chosen_assignee(), request=request
        )
    except CareError as error:
        messages.error(request, str(error))
        return redirect(_decided_page(proposal))
    if decided.prescription_id:
        messages.success(request, _("Accepted: the draft prescription waits for your review."))
        return redirect("records:prescription_draft", decided.prescription_id)
    messages.success(request, _("Accepted: the task is created."))
    return redirect(_decided_page(decided))


@require_POST
@login_required
def proposal_dismiss(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    proposal, access = get_proposal_for_user(
        user, pk, request=request, action=None, queryset=Proposal.objects.select_related("rule")
    )
    form = DismissForm(request.POST, prefix=f"p{pk}")
    if not form.is_valid():
        messages.error(request, _("Give the reason for dismissing the proposal."))
        return redirect(_decided_page(proposal))
    try:
        do_dismiss_proposal(access, proposal, form.cleaned_data["reason"], request=request)
    except CareError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("Dismissed. The reason is kept with the proposal."))
    return redirect(_decided_page(proposal))


@require_GET
@login_required
def proposal_fragment(request: HttpRequest, pk: int) -> HttpResponse:
    """One proposal rendered as the chart tab shows it, or as a row of the clinic list
    (`?row=1`): what live updates fetch."""
    user = _user(request)
    proposal, access = get_proposal_for_user(
        user,
        pk,
        request=request,
        queryset=Proposal.objects.select_related(
            "rule", "patient", "decided_by", "task", "prescription"
        ),
    )
    view = proposal_view(proposal)
    if request.GET.get("row"):
        return render(request, "care/support/_proposal_row.html", {"view": view})
    _with_forms(view, _team(access.patient), user)
    return render(request, "care/support/_proposal.html", {"view": view})


@require_GET
@login_required
def proposals(request: HttpRequest) -> HttpResponse:
    """The open proposals of my patients, most important first."""
    user = _user(request)
    if not is_clinician(user):
        raise deny(user, request=request, what="decision-support proposals")
    rows = (
        Proposal.objects.filter(
            patient__in=patients_for_user(user).values("pk"), status=Proposal.Status.OPEN
        )
        .select_related("rule", "patient")
        .order_by(SEVERITY_RANK, "-created_at", "-pk")
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    views = [proposal_view(p) for p in page]
    patients = {view.proposal.patient_id for view in views}
    # One row for the page of names and reasons shown (as the other clinic lists do).
    audit(
        Action.READ,
        request=request,
        actor=user,
        object_type="care.proposal",
        patient_id=str(next(iter(patients))) if len(patients) == 1 else "",
        detail={
            "what": "decision-support proposals",
            "count": len(views),
            "patients": len(patients),
        },
    )
    context = {"page": page, "views": views, "fragment_url": reverse("care:proposal", args=[0])}
    return render(request, "care/support/proposals.html", context)
