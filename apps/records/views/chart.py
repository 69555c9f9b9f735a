"""The chart: summary, results, reports, notes, timeline, care team, emergency access.

Each view serves both portals: `pid` is the patient in the clinic, None for the signed-in
patient's own record. Access always goes through `patient_access` / `get_item_for_user`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.decorators import staff_required
from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action, AuditEvent
from apps.audit.services import record as audit

from ..access import Via, active_break_glass, deny, get_item_for_user, patients_for_user
from ..forms.clinical import (
    AddMemberForm,
    AmendNoteForm,
    AnnotationForm,
    BreakGlassForm,
    EmergencySearchForm,
    NoteForm,
    ObservationForm,
    TimelineFilterForm,
)
from ..models import (
    AllergyIntolerance,
    BreakGlassAccess,
    CareTeamMember,
    ClinicalNote,
    Concept,
    Condition,
    DiagnosticReport,
    MedicationStatement,
    Observation,
    Patient,
)
from ..services import RecordError
from ..services.break_glass import do_break_glass
from ..services.care_team import current_members, default_team, do_add_member, do_remove_member
from ..services.clinical import (
    do_amend_note,
    do_annotate_observation,
    do_record_observation,
    do_write_note,
)
from ..timeline import timeline_page
from .common import paginate, patient_access, render_chart

CHART_POINTS = 400


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _clinician_required(request: HttpRequest, what: str) -> None:
    if _user(request).role not in CLINICAL_ROLES:
        raise deny(_user(request), request=request, what=what)


@staff_required
def my_patients(request: HttpRequest) -> HttpResponse:
    """The patients of my care teams, and those I opened in an emergency (still valid)."""
    _clinician_required(request, "my-patients")
    user = _user(request)
    query = request.GET.get("q", "").strip()
    patients = patients_for_user(user).select_related("organization")
    if query:
        patients = patients.filter(
            Q(family_name__icontains=query) | Q(given_names__icontains=query)
        )
    page = paginate(request, patients.order_by("family_name", "given_names"))
    emergencies = (
        BreakGlassAccess.objects.filter(user=user, ended_at__isnull=True)
        .filter(expires_at__gt=timezone.now())
        .select_related("patient")
    )
    return render(
        request,
        "records/my_patients.html",
        {"page": page, "query": query, "emergencies": emergencies},
    )


@login_required
def summary(request: HttpRequest, pid: int | None = None) -> HttpResponse:
    user = _user(request)
    if pid is None and user.is_patient and getattr(user, "patient_record", None) is None:
        return render(request, "records/no_record.html")
    access = patient_access(request, pid, "summary")
    latest = (
        access.visible(Observation.objects.all())
        .annotate(
            rank=Window(RowNumber(), partition_by=[F("code_id")], order_by=F("effective_at").desc())
        )
        .filter(rank=1)
        .select_related("code")
        .order_by("category", "code__display")
    )
    context = {
        "conditions": access.visible(Condition.objects.select_related("code")).order_by(
            "clinical_status", "-recorded_at"
        ),
        "allergies": access.visible(AllergyIntolerance.objects.select_related("substance")),
        "medications": access.visible(
            MedicationStatement.objects.filter(status="active").select_related("medication")
        ),
        "latest": list(latest),
    }
    return render_chart(request, access, "summary", "records/summary.html", context)


def _series(access: Any, code: Concept) -> dict[str, Any]:
    """The points of one code for the chart, thinned evenly to at most CHART_POINTS."""
    rows = list(
        access.visible(Observation.objects.filter(code=code))
        .order_by("effective_at")
        .values_list("effective_at", "value")
    )
    step = max(1, -(-len(rows) // CHART_POINTS))
    points = [{"t": at.isoformat(), "v": float(value)} for at, value in rows[::step]]
    if rows and rows[-1][0].isoformat() != points[-1]["t"]:
        points.append({"t": rows[-1][0].isoformat(), "v": float(rows[-1][1])})
    return {
        "label": code.label,
        "unit": code.unit,
        "low": float(code.low) if code.low is not None else None,
        "high": float(code.high) if code.high is not None else None,
        "points": points,
    }


@login_required
def results(request: HttpRequest, pid: int | None = None) -> HttpResponse:
    access = patient_access(request, pid, "results")
    observations = access.visible(Observation.objects.all())
    code_ids = observations.order_by().values_list("code_id", flat=True).distinct()
    codes = list(Concept.objects.filter(pk__in=code_ids).order_by("category", "display"))
    selected = next((c for c in codes if c.code == request.GET.get("code")), None)
    if selected is None and codes:
        selected = codes[0]
    rows = observations.select_related("code").order_by("-effective_at")
    if selected is not None:
        rows = rows.filter(code=selected)
    form = None
    if not access.is_patient_self:
        form = ObservationForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                do_record_observation(
                    access,
                    _user(request),
                    code=form.cleaned_data["code"],
                    value=form.cleaned_data["value"],
                    effective_at=form.cleaned_data["effective_at"],
                    request=request,
                )
            except RecordError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, _("The measurement was added."))
                return redirect(
                    request.path + f"?code={form.cleaned_data['code'].code}",
                )
    context = {
        "codes": codes,
        "selected": selected,
        "series": _series(access, selected) if selected else None,
        "page": paginate(request, rows),
        "form": form,
    }
    status = 400 if form is not None and form.errors else 200
    return render_chart(request, access, "results", "records/results.html", context, status)


@login_required
def observation(request: HttpRequest, oid: int) -> HttpResponse:
    obj, access = get_item_for_user(
        _user(request),
        Observation,
        oid,
        request=request,
        what="observation",
        queryset=Observation.objects.select_related("code"),
    )
    if access.is_patient_self != (request.resolver_match.url_name == "my_observation"):  # type: ignore[union-attr]
        # Each portal has its own address: send people to theirs.
        name = "records:my_observation" if access.is_patient_self else "records:observation"
        return redirect(reverse(name, args=[obj.pk]))
    form = None
    if not access.is_patient_self:
        form = AnnotationForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                do_annotate_observation(
                    obj, access, _user(request), form.cleaned_data["text"], request=request
                )
            except RecordError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, _("Your annotation was added."))
                return redirect(request.path)
    context = {
        "observation": obj,
        "annotations": obj.notes.select_related("author"),
        "form": form,
    }
    return render_chart(request, access, "results", "records/observation.html", context)


@login_required
def reports(request: HttpRequest, pid: int | None = None) -> HttpResponse:
    access = patient_access(request, pid, "reports")
    rows = (
        access.visible(DiagnosticReport.objects.all())
        .select_related("code", "document")
        .order_by("-issued_at")
    )
    page = paginate(request, rows)
    results_by_report: dict[int, list[Observation]] = {}
    for obs in access.visible(
        Observation.objects.filter(report__in=[r.pk for r in page.object_list])
    ).select_related("code"):
        results_by_report.setdefault(obs.report_id, []).append(obs)  # type: ignore[arg-type]
    for report in page.object_list:
        report.result_rows = results_by_report.get(report.pk, [])
    return render_chart(request, access, "reports", "records/reports.html", {"page": page})


@login_required
def notes(request: HttpRequest, pid: int) -> HttpResponse:
    access = patient_access(request, pid, "notes")
    rows = (
        access.visible(ClinicalNote.objects.all())
        .select_related("recorded_by", "amends")
        .order_by("-signed_at")
    )
    return render_chart(
        request, access, "notes", "records/notes.html", {"page": paginate(request, rows)}
    )


@login_required
def note_new(request: HttpRequest, pid: int) -> HttpResponse:
    access = patient_access(request, pid, "note-new", action=None)
    form = NoteForm(request.POST or None, allowed=access.sensitivities)
    if request.method == "POST" and form.is_valid():
        try:
            do_write_note(access, _user(request), **form.cleaned_data, request=request)
        except RecordError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The note is signed and saved."))
            return redirect("records:notes", pid)
    status = 400 if form.errors else 200
    return render_chart(
        request, access, "notes", "records/note_form.html", {"form": form}, status=status
    )


@login_required
def note_amend(request: HttpRequest, pid: int, nid: int) -> HttpResponse:
    note, access = get_item_for_user(
        _user(request), ClinicalNote, nid, request=request, what="note-amend", action=None
    )
    if note.patient_id != pid or access.is_patient_self:
        raise deny(_user(request), request=request, what="note-amend", object_id=pid)
    form = AmendNoteForm(request.POST or None, initial={"text": note.text})
    if request.method == "POST" and form.is_valid():
        try:
            do_amend_note(note, access, _user(request), **form.cleaned_data, request=request)
        except RecordError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The amendment is signed; the original stays visible."))
            return redirect("records:notes", pid)
    status = 400 if form.errors else 200
    return render_chart(
        request,
        access,
        "notes",
        "records/note_form.html",
        {"form": form, "original": note},
        status=status,
    )


@login_required
def timeline(request: HttpRequest, pid: int | None = None) -> HttpResponse:
    access = patient_access(request, pid, "timeline")
    form = TimelineFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_valid():
        filters = {
            "kinds_wanted": form.cleaned_data["kind"],
            "since": form.cleaned_data["since"],
            "until": form.cleaned_data["until"],
        }
    page, entries = timeline_page(access, page=request.GET.get("page"), **filters)
    query = request.GET.copy()
    query.pop("page", None)
    context = {"form": form, "page": page, "entries": entries, "query": query.urlencode()}
    return render_chart(request, access, "timeline", "records/timeline.html", context)


@login_required
def care_team(request: HttpRequest, pid: int) -> HttpResponse:
    access = patient_access(
        request, pid, "care-team", action=None if request.method == "POST" else "read"
    )
    members = current_members(access.patient)
    may_manage = access.via == Via.CARE_TEAM
    form = AddMemberForm(
        request.POST or None,
        organization_id=access.patient.organization_id,
        exclude=[m.user_id for m in members],
    )
    if request.method == "POST":
        if not may_manage:
            raise Http404
        if "remove" in request.POST:
            member = get_object_or_404(
                CareTeamMember,
                pk=request.POST["remove"],
                care_team__patient=access.patient,
                ended_at__isnull=True,
            )
            do_remove_member(member, by=_user(request), request=request)
            messages.success(request, _("%(name)s left the care team.") % {"name": member.user})
            return redirect("records:care_team", pid)
        if form.is_valid():
            try:
                do_add_member(
                    default_team(access.patient),
                    form.cleaned_data["user"],
                    by=_user(request),
                    request=request,
                )
            except RecordError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, _("The care team was updated."))
                return redirect("records:care_team", pid)
    context = {"members": members, "form": form, "may_manage": may_manage}
    return render_chart(request, access, "care_team", "records/care_team.html", context)


@login_required
def emergency_search(request: HttpRequest) -> HttpResponse:
    """Find a patient outside my care teams by AHV number, or family name and birth date."""
    _clinician_required(request, "emergency-search")
    form = EmergencySearchForm(request.GET or None)
    found: list[Patient] = []
    if form.is_valid():
        data = form.cleaned_data
        if data["ahv_number"]:
            matches = Patient.objects.filter(ahv_number=data["ahv_number"].strip())
        else:
            matches = Patient.objects.filter(
                family_name__iexact=data["family_name"].strip(), birth_date=data["birth_date"]
            )
        found = list(matches[:10])
        audit(
            Action.READ,
            request=request,
            object_type="records.patient",
            detail={"what": "emergency-search", "results": len(found)},
        )
    return render(request, "records/emergency_search.html", {"form": form, "found": found})


@login_required
def break_glass(request: HttpRequest, pid: int) -> HttpResponse:
    _clinician_required(request, "break-glass")
    user = _user(request)
    patient = Patient.objects.filter(pk=pid).first()
    if patient is None:
        raise Http404
    if active_break_glass(user, patient.pk) is not None or (
        patients_for_user(user).filter(pk=patient.pk).exists()
    ):
        return redirect("records:chart", pid)
    form = BreakGlassForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            do_break_glass(user, patient.pk, form.cleaned_data["reason"], request=request)
        except RecordError as error:
            form.add_error("reason", str(error))
        else:
            return redirect("records:chart", pid)
    status = 400 if form.errors else 200
    return render(
        request, "records/break_glass.html", {"form": form, "patient": patient}, status=status
    )


@login_required
def access_log(request: HttpRequest) -> HttpResponse:
    """Who opened or changed my record, from the audit trail (my own visits left out)."""
    access = patient_access(request, None, "access-log")
    events = (
        AuditEvent.objects.filter(patient_id=str(access.patient.pk))
        .exclude(actor_id=access.user.pk)
        .order_by("-seq")
    )
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    actor_ids = {e.actor_id for e in page.object_list if e.actor_id}
    people = {u.pk: u for u in User.objects.filter(pk__in=actor_ids)}
    rows = []
    for event in page.object_list:
        person = people.get(event.actor_id) if event.actor_id else None
        rows.append(
            {
                "event": event,
                "who": person.get_full_name() if person else _("Unknown or public verification"),
                "role": person.role_label if person else "",
                "emergency": event.action == Action.BREAK_GLASS
                or "break_glass" in (event.detail or {}),
            }
        )
    return render_chart(
        request, access, "access_log", "records/access_log.html", {"page": page, "rows": rows}
    )
