"""Booking by the clinic: any patient of the user's care teams, one or several clinicians.

The clinic books any start inside the clinicians' availability (not only the patients' grid);
"Show common free times" lists the times where every chosen clinician is free, as buttons that
book at once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from apps.accounts.decorators import staff_required
from apps.accounts.models import User
from apps.records.access import patients_for_user
from apps.records.models import Patient

from ..forms_team import StaffBookingForm
from ..services import SchedulingError, SlotTaken
from ..services.availability import agenda_clinicians
from ..services.booking import access_for_booking, do_book_appointment
from ..services.joint import joint_free_slots
from ..services.slots import clinic_zone
from .team_agenda import clinical_user

SEARCH_DAYS = 7
SUGGESTIONS = 40
PATIENT_CHOICES = 200


def _patients(user: User, query: str) -> QuerySet[Patient]:
    found = patients_for_user(user).order_by("family_name", "given_names", "pk")
    for word in query.split()[:4]:
        found = found.filter(Q(family_name__icontains=word) | Q(given_names__icontains=word))
    return found


def _suggest(form: StaffBookingForm) -> list[dict[str, Any]]:
    """Common free times from the chosen date on, grouped by day (clinic zone)."""
    zone = clinic_zone()
    day = form.cleaned_data["date"]
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    slots = joint_free_slots(
        form.cleaned_data["type"],
        [c.pk for c in form.chosen_clinicians()],
        start,
        start + dt.timedelta(days=SEARCH_DAYS),
        limit=SUGGESTIONS,
    )
    days: list[dict[str, Any]] = []
    for slot in slots:
        local = slot.starts_at.astimezone(zone)
        if not days or days[-1]["day"] != local.date():
            days.append({"day": local.date(), "times": []})
        days[-1]["times"].append({"value": slot.starts_at.isoformat(), "label": f"{local:%H:%M}"})
    return days


def _chosen_start(request: HttpRequest, form: StaffBookingForm) -> dt.datetime | None:
    picked = request.POST.get("start", "")
    if picked:
        try:
            instant = dt.datetime.fromisoformat(picked)
        except ValueError:
            instant = None
        if instant is None or instant.tzinfo is None:
            form.add_error(None, _("This time is not valid."))
            return None
        return instant
    if form.cleaned_data.get("time") is None:
        form.add_error("time", _("Choose a time, or one of the common free times."))
        return None
    instant = form.starts_at()
    if instant is None:
        form.add_error("time", _("This time does not exist on that day (the clocks change)."))
    return instant


@staff_required
@require_http_methods(["GET", "HEAD", "POST"])
def staff_book(request: HttpRequest) -> HttpResponse:
    user = clinical_user(request, "staff-booking")
    clinicians = list(agenda_clinicians(user).order_by("role", "last_name", "first_name"))
    query = request.GET.get("q", "").strip()[:100]
    suggestions: list[dict[str, Any]] = []
    alternatives: list[dict[str, str]] = []
    status = 200
    if request.method != "POST":
        initial = {
            "patient": request.GET.get("patient"),
            "type": request.GET.get("type"),
            "clinicians": request.GET.getlist("clinicians"),
            "date": request.GET.get("date") or dt.datetime.now(clinic_zone()).date(),
            "time": request.GET.get("time"),
        }
        patients = _patients(user, query)[:PATIENT_CHOICES]
        form = StaffBookingForm(initial=initial, patients=patients, clinicians=clinicians)
    else:
        form = StaffBookingForm(request.POST, patients=_patients(user, ""), clinicians=clinicians)
        if form.is_valid():
            if request.POST.get("action") == "suggest":
                suggestions = _suggest(form)
                if not suggestions:
                    form.add_error(
                        None,
                        _("No common free time in the %(days)s days from this date.")
                        % {"days": SEARCH_DAYS},
                    )
            else:
                starts_at = _chosen_start(request, form)
                if starts_at is not None:
                    try:
                        access = access_for_booking(
                            user, form.cleaned_data["patient"].pk, request=request
                        )
                        appointment = do_book_appointment(
                            access,
                            form.cleaned_data["type"],
                            starts_at,
                            form.chosen_clinicians(),
                            reason=form.cleaned_data["reason"],
                            request=request,
                        )
                    except SchedulingError as error:
                        form.add_error(None, str(error))
                        if isinstance(error, SlotTaken):
                            zone = clinic_zone()
                            alternatives = [
                                {
                                    "value": slot.starts_at.isoformat(),
                                    "label": f"{slot.starts_at.astimezone(zone):%d.%m.%Y %H:%M}",
                                }
                                for slot in error.alternatives
                            ]
                        if not alternatives:
                            suggestions = _suggest(form)
                    else:
                        messages.success(request, _("The appointment is booked."))
                        local = appointment.starts_at.astimezone(clinic_zone())
                        agenda = {
                            "view": "day",
                            "date": local.date().isoformat(),
                            "clinician": [c.pk for c in form.chosen_clinicians()],
                        }
                        return redirect(
                            f"{reverse('scheduling:team_agenda')}?{urlencode(agenda, doseq=True)}"
                        )
        status = 400 if form.errors else 200
    context = {
        "form": form,
        "query": query,
        "suggestions": suggestions,
        "alternatives": alternatives,
        "search_days": SEARCH_DAYS,
    }
    return render(request, "scheduling/team_book.html", context, status=status)
