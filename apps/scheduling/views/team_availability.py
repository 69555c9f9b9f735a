"""A clinician's availability page: weekly rules, exceptions, appointment types offered.

The clinician manages their own; a care coordinator picks any clinician of their organisation
(`?clinician=<id>`). Anyone else gets 404 (audited by the service's gate).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from apps.accounts.decorators import staff_required
from apps.accounts.models import Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit

from ..forms_team import ExceptionForm, RuleForm, TypesForm
from ..models import AvailabilityException, AvailabilityRule, Schedule
from ..services import SchedulingError
from ..services.availability import (
    AGENDA_ROLES,
    agenda_clinicians,
    describe,
    do_add_exception,
    do_add_rule,
    do_remove_exception,
    do_remove_rule,
    do_set_types,
    get_clinician_for_manager,
)
from .team_agenda import clinical_user


def _page_url(user: User, clinician: User) -> str:
    url = reverse("scheduling:availability")
    if clinician.pk != user.pk:
        url += "?" + urlencode({"clinician": clinician.pk})
    return url


def _apply(request: HttpRequest, user: User, clinician: User) -> dict[str, Any] | None:
    """Run the POSTed change; the forms to show again with their errors, or None (done)."""
    action = request.POST.get("action", "")
    forms: dict[str, Any] = {}
    try:
        if action == "add_rule":
            rule_form = RuleForm(request.POST, clinician=clinician)
            forms["rule_form"] = rule_form
            if not rule_form.is_valid():
                return forms
            do_add_rule(user, clinician, request=request, **rule_form.cleaned_data)
            messages.success(request, _("The availability is added."))
        elif action == "remove_rule":
            do_remove_rule(user, clinician, request.POST.get("rule"), request=request)
            messages.success(request, _("The availability is removed."))
        elif action == "add_exception":
            exception_form = ExceptionForm(request.POST)
            forms["exception_form"] = exception_form
            if not exception_form.is_valid():
                return forms
            _exception, booked = do_add_exception(
                user, clinician, request=request, **exception_form.cleaned_data
            )
            messages.success(request, _("The unavailability is added."))
            if booked:
                messages.warning(
                    request,
                    _(
                        "These appointments are booked during the unavailability and were not "
                        "cancelled: %(list)s. Move or cancel them."
                    )
                    % {"list": "; ".join(describe(a) for a in booked)},
                )
        elif action == "remove_exception":
            do_remove_exception(user, clinician, request.POST.get("exception"), request=request)
            messages.success(request, _("The unavailability is removed."))
        elif action == "set_types":
            types_form = TypesForm(request.POST)
            forms["types_form"] = types_form
            if not types_form.is_valid():
                return forms
            do_set_types(
                user,
                clinician,
                types_form.cleaned_data["types"],
                specialty=types_form.cleaned_data["specialty"],
                specialty_code=types_form.cleaned_data["specialty_code"],
                request=request,
            )
            messages.success(request, _("The appointment types are saved."))
        else:
            forms["errors"] = [_("Unknown action.")]
            return forms
    except SchedulingError as error:
        forms["errors"] = [str(error)]
        return forms
    return None


@staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def availability(request: HttpRequest) -> HttpResponse:
    user = clinical_user(request, "availability")
    wanted = request.GET.get("clinician")
    if wanted is None and user.role == Role.COORDINATOR:
        clinicians = agenda_clinicians(user).order_by("last_name", "first_name")
        return render(request, "scheduling/availability_choose.html", {"clinicians": clinicians})
    clinician = get_clinician_for_manager(
        user, user.pk if wanted is None else wanted, request=request
    )
    shown: dict[str, Any] = {}
    status = 200
    if request.method == "POST":
        shown = _apply(request, user, clinician) or {}
        if not shown:
            return redirect(_page_url(user, clinician))
        status = 400
    schedule = Schedule.objects.filter(clinician=clinician).first()
    rules = (
        AvailabilityRule.objects.filter(schedule=schedule).select_related("location")
        if schedule
        else AvailabilityRule.objects.none()
    )
    exceptions = (
        AvailabilityException.objects.filter(schedule=schedule).order_by("-starts_at")[:50]
        if schedule
        else AvailabilityException.objects.none()
    )
    types_initial = {
        "types": list(schedule.appointment_types.all()) if schedule else [],
        "specialty": schedule.specialty if schedule else "",
        "specialty_code": schedule.specialty_code if schedule else "",
    }
    if user.pk != clinician.pk:
        audit(
            Action.READ,
            request=request,
            object_type="accounts.user",
            object_id=str(clinician.pk),
            detail={"what": "availability"},
        )
    context = {
        "clinician": clinician,
        "own": clinician.pk == user.pk,
        "page_url": _page_url(user, clinician),
        "schedule": schedule,
        "rules": rules,
        "exceptions": exceptions,
        "rule_form": shown.get("rule_form") or RuleForm(clinician=clinician),
        "exception_form": shown.get("exception_form") or ExceptionForm(),
        "types_form": shown.get("types_form") or TypesForm(initial=types_initial),
        "errors": shown.get("errors", []),
        "agenda_roles": AGENDA_ROLES,
    }
    return render(request, "scheduling/availability.html", context, status=status)
