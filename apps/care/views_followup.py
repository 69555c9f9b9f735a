"""Follow-up pages. The patient's: "My care" (plans, today's doses with one-tap answers,
questionnaires waiting, adherence chart), one dose, a questionnaire to answer, the reminder
preferences. The clinician's: the chart tab "Follow-up" (adherence per medicine, recent doses,
questionnaires and answers, satisfaction) and one response.

Every page reaches its object through `apps.records.access` (audited read, or audited 404).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import F, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import User
from apps.records.access import PatientAccess, deny, get_item_for_user
from apps.records.views.common import patient_access, render_chart

from .forms_followup import DoseAnswerForm, PreferencesForm
from .models import (
    CarePlan,
    CarePreferences,
    DoseReminder,
    Questionnaire,
    QuestionnaireRequest,
    QuestionnaireResponse,
)
from .models.plans import OPEN_PLAN_STATUSES
from .services import CareError
from .services.followup_items import (
    AnswerErrors,
    answer_display,
    item_text,
    meets_alert,
    option_text,
)
from .services.followup_time import LocalRules, local_day_bounds
from .services.questionnaires import do_answer_questionnaire, satisfaction_summary
from .services.questionnaires import is_answerable as request_answerable
from .services.reminders import (
    adherence,
    do_answer_dose,
    do_save_preferences,
    is_answerable,
    rules_of_patient,
)

PAGE_SIZE = 20
DOSES_SHOWN = 40
WAITING_SHOWN = 20
SATISFACTION_SHOWN = 50


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _own(request: HttpRequest, model: Any, pk: int, what: str) -> tuple[Any, PatientAccess]:
    """One of the signed-in patient's own rows, or 404 (audited): these pages are the patient's."""
    user = _user(request)
    label = model._meta.label_lower
    if not user.is_patient:
        raise deny(user, request=request, what=what, object_type=label, object_id=pk)
    item, access = get_item_for_user(user, model, pk, request=request, what=what)
    if not access.is_patient_self:
        raise deny(
            user,
            request=request,
            what=what,
            object_type=label,
            object_id=pk,
            patient_id=access.patient.pk,
        )
    return item, access


def _render_local(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    rules: LocalRules,
    status: int = 200,
) -> HttpResponse:
    """Render a patient's page with times in the patient's own time zone."""
    with timezone.override(rules.zone):
        return render(request, template, context, status=status)


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


# ---------------------------------------------------------------------------------------------
# The patient's pages


def _doses_query() -> Any:
    return DoseReminder.objects.select_related("line__medication").order_by("scheduled_for", "pk")


def dose_rows(access: PatientAccess, now: dt.datetime, rules: LocalRules) -> list[DoseReminder]:
    """Today's doses, the next 24 hours', and any earlier one still waiting for an answer."""
    start, _end = local_day_bounds(now.astimezone(rules.zone).date(), rules.zone)
    rows = (
        _doses_query()
        .filter(patient=access.patient)
        .filter(
            Q(scheduled_for__gte=start, scheduled_for__lte=now + dt.timedelta(hours=24))
            | Q(status=DoseReminder.Status.SENT)
        )
    )
    doses = list(rows[:DOSES_SHOWN])
    for dose in doses:
        dose.answerable = is_answerable(dose, now)  # type: ignore[attr-defined]
        dose.local_at = dose.scheduled_for.astimezone(rules.zone)  # type: ignore[attr-defined]
    return doses


@require_GET
@login_required
def my_care(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not user.is_patient:
        raise deny(user, request=request, what="my care")
    access = patient_access(request, None, "my care")
    patient = access.patient
    now = timezone.now()
    plans = list(
        CarePlan.objects.filter(patient=patient, status__in=OPEN_PLAN_STATUSES)
        .select_related("pathway")
        .order_by("-start_date", "-pk")[:10]
    )
    waiting = list(
        QuestionnaireRequest.objects.filter(
            patient=patient, status=QuestionnaireRequest.Status.SENT, expires_at__gt=now
        )
        .select_related("questionnaire")
        .order_by("expires_at", "pk")[:WAITING_SHOWN]
    )
    rules = rules_of_patient(patient)
    result = adherence(patient, 30, now=now, rules=rules)
    return _render_local(
        request,
        "care/followup/my_care.html",
        {
            "patient": patient,
            "plans": plans,
            "doses": dose_rows(access, now, rules),
            "waiting": waiting,
            "adherence": result,
            "series": {"points": result.series},
            "now": now,
        },
        rules,
    )


@require_GET
@login_required
def dose(request: HttpRequest, pk: int) -> HttpResponse:
    item, access = _own(request, DoseReminder, pk, "dose")
    item = _doses_query().get(pk=item.pk)
    rules = rules_of_patient(access.patient)
    item.answerable = is_answerable(item)  # type: ignore[attr-defined]
    item.local_at = item.scheduled_for.astimezone(rules.zone)  # type: ignore[attr-defined]
    return _render_local(
        request, "care/followup/dose.html", {"dose": item, "form": DoseAnswerForm()}, rules
    )


@require_POST
@login_required
def dose_answer(request: HttpRequest, pk: int) -> HttpResponse:
    item, access = _own(request, DoseReminder, pk, "dose")
    form = DoseAnswerForm(request.POST)
    error = ""
    if not form.is_valid():
        error = " ".join(str(m) for errors in form.errors.values() for m in errors)
    else:
        try:
            do_answer_dose(
                _user(request),
                item,
                form.cleaned_data["answer"] == "taken",
                form.cleaned_data["reason"],
                request=request,
            )
        except CareError as exc:
            error = str(exc)
    if request.headers.get("HX-Request"):
        row = _doses_query().get(pk=item.pk)
        rules = rules_of_patient(access.patient)
        row.answerable = is_answerable(row)  # type: ignore[attr-defined]
        row.local_at = row.scheduled_for.astimezone(rules.zone)  # type: ignore[attr-defined]
        return _render_local(
            request,
            "care/followup/_dose_row.html",
            {"dose": row, "error": error, "next": _safe_next(request, "")},
            rules,
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, _("Thank you, your answer is recorded."))
    return redirect(_safe_next(request, reverse("care:dose", args=[item.pk])))


def _questions(
    questionnaire: Questionnaire, values: Any, errors: dict[str, str]
) -> list[dict[str, Any]]:
    """What the answer form shows for each question, in the reader's language."""
    rows = []
    for item in questionnaire.items:
        link_id = item["link_id"]
        value = values.get(link_id, "") if values is not None else ""
        options = []
        if item["type"] == "choice":
            options = [
                {"code": o["code"], "label": option_text(o), "checked": value == o["code"]}
                for o in item["options"]
            ]
        elif item["type"] == "boolean":
            options = [
                {"code": "yes", "label": _("yes"), "checked": value in ("yes", True)},
                {"code": "no", "label": _("no"), "checked": value in ("no", False)},
            ]
        rows.append(
            {
                "id": f"q-{link_id}",
                "name": link_id,
                "type": item["type"],
                "text": item_text(item),
                "required": bool(item.get("required")),
                "min": item.get("min"),
                "max": item.get("max"),
                "max_length": item.get("max_length", 2000 if item["type"] == "text" else 200),
                "step": "1" if item["type"] == "integer" else "any",
                "value": "" if value is None else value,
                "options": options,
                "error": errors.get(link_id, ""),
            }
        )
    return rows


def _answered(response: QuestionnaireResponse | None) -> list[dict[str, str]]:
    if response is None:
        return []
    return [
        {
            "question": item_text(item),
            "answer": answer_display(item, response.answers.get(item["link_id"])),
        }
        for item in response.questionnaire.items
    ]


@require_http_methods(["GET", "POST"])
@login_required
def questionnaire(request: HttpRequest, pk: int) -> HttpResponse:
    item, access = _own(request, QuestionnaireRequest, pk, "questionnaire request")
    request_obj = QuestionnaireRequest.objects.select_related(
        "questionnaire", "patient", "plan"
    ).get(pk=item.pk)
    errors: dict[str, str] = {}
    values: Any = None
    status = 200
    if request.method == "POST":
        values = request.POST
        try:
            do_answer_questionnaire(_user(request), request_obj, request.POST, request=request)
        except AnswerErrors as exc:
            errors, status = exc.errors, 400
        except CareError as exc:
            messages.error(request, str(exc))
            return redirect("care:questionnaire", pk=request_obj.pk)
        else:
            messages.success(request, _("Thank you, your answers were sent to your care team."))
            return redirect("care:my_care")
    response = (
        QuestionnaireResponse.objects.filter(request=request_obj)
        .select_related("questionnaire")
        .first()
    )
    return _render_local(
        request,
        "care/followup/questionnaire.html",
        {
            "request_obj": request_obj,
            "title": request_obj.questionnaire.display_title(),
            "answerable": request_answerable(request_obj),
            "questions": _questions(request_obj.questionnaire, values, errors),
            "errors": errors,
            "answers": _answered(response),
            "response": response,
        },
        rules_of_patient(request_obj.patient),
        status=status,
    )


@require_http_methods(["GET", "POST"])
@login_required
def preferences(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if not user.is_patient:
        raise deny(user, request=request, what="reminder preferences")
    access = patient_access(request, None, "reminder preferences")
    prefs = CarePreferences.objects.filter(patient=access.patient).first()
    status = 200
    if request.method == "POST":
        form = PreferencesForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                do_save_preferences(
                    access,
                    time_zone=data["time_zone"],
                    dose_times=form.dose_times,
                    quiet_start=data["quiet_start"],
                    quiet_end=data["quiet_end"],
                    medication_reminders=data["medication_reminders"],
                    request=request,
                )
            except CareError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Your reminder preferences are saved."))
                return redirect("care:my_care")
        status = 400
    else:
        form = PreferencesForm(
            initial=PreferencesForm.initial_for(prefs, rules_of_patient(access.patient))
        )
    return render(request, "care/followup/preferences.html", {"form": form}, status=status)


# ---------------------------------------------------------------------------------------------
# The clinician's chart tab


@require_GET
@login_required
def patient_followup(request: HttpRequest, patient_pk: int) -> HttpResponse:
    access = patient_access(request, patient_pk, "follow-up")
    patient = access.patient
    now = timezone.now()
    rules = rules_of_patient(patient)
    result = adherence(patient, 30, sensitivities=access.sensitivities, now=now, rules=rules)
    doses = (
        _doses_query()
        .filter(patient=patient, scheduled_for__lte=now, line__sensitivity__in=access.sensitivities)
        .order_by("-scheduled_for", "-pk")
    )
    dose_page = Paginator(doses, PAGE_SIZE).get_page(request.GET.get("doses"))
    for row in dose_page:
        row.local_at = row.scheduled_for.astimezone(rules.zone)
    requests = (
        QuestionnaireRequest.objects.filter(patient=patient)
        .exclude(status=QuestionnaireRequest.Status.CANCELLED)
        .select_related("questionnaire", "response")
        .order_by(F("response__flagged").desc(nulls_last=True), "-due_at", "-pk")
    )
    request_page = Paginator(requests, PAGE_SIZE).get_page(request.GET.get("page"))
    surveys = list(
        QuestionnaireResponse.objects.filter(
            patient=patient, questionnaire__purpose=Questionnaire.Purpose.SATISFACTION
        )
        .select_related("questionnaire")
        .order_by("-authored_at")[:SATISFACTION_SHOWN]
    )
    comments = [
        {"at": r.authored_at, "text": r.answers["comment"]}
        for r in surveys
        if isinstance(r.answers.get("comment"), str) and r.answers["comment"]
    ][:5]
    return render_chart(
        request,
        access,
        "care-followup",
        "care/followup/patient_followup.html",
        {
            "adherence": result,
            "series": {"points": result.series},
            "dose_page": dose_page,
            "request_page": request_page,
            "satisfaction": satisfaction_summary(surveys),
            "comments": comments,
            "zone": rules.zone.key,
        },
    )


@require_GET
@login_required
def followup_response(request: HttpRequest, pk: int) -> HttpResponse:
    user = _user(request)
    if not user.is_clinician:
        raise deny(
            user,
            request=request,
            what="questionnaire response",
            object_type="care.questionnaireresponse",
            object_id=pk,
        )
    item, access = get_item_for_user(
        user, QuestionnaireResponse, pk, request=request, what="questionnaire response"
    )
    response = QuestionnaireResponse.objects.select_related(
        "questionnaire", "request", "author"
    ).get(pk=item.pk)
    rows = []
    for question in response.questionnaire.items:
        value = response.answers.get(question["link_id"])
        rows.append(
            {
                "question": item_text(question),
                "answer": answer_display(question, value),
                "alert": meets_alert(question, value),
            }
        )
    return render_chart(
        request,
        access,
        "care-followup",
        "care/followup/response.html",
        {"response": response, "rows": rows},
    )
