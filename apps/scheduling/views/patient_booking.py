"""Online booking by the patient: search free slots, confirm, book; move an appointment.

Search → confirm → book all live at `appointments/book/`: a GET with search fields lists free
slots, a GET with `slot` shows the confirm step, a POST books. The slot a patient picks is
checked again when booking (the service locks and re-checks); the loser of a race sees the
"just taken" message with the next free slots of the same professional.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from apps.records.access import PatientAccess, deny

from ..forms_patient import (
    ConfirmForm,
    MoveForm,
    SearchForm,
    SlotChoice,
    active_schedules,
    bookable_types,
)
from ..models import AppointmentType, Location, Participant, Schedule
from ..services import SchedulingError, SlotTaken
from ..services.booking import (
    alternatives_for,
    do_book_appointment,
    do_reschedule_appointment,
    get_appointment_for_user,
)
from ..services.slots import Slot, available_for, clinic_zone, free_slots
from .patient_appointments import change_policy
from .patient_common import day_start, own_access, slot_rows, user_of

SEARCH_DAYS = 14
SEARCH_LIMIT = 60


@login_required
def book(request: HttpRequest) -> HttpResponse:
    user = user_of(request)
    if user.is_staff_member:
        try:
            return redirect(reverse("scheduling:staff_book"))
        except NoReverseMatch:
            raise deny(user, request=request, what="appointments") from None
    access = own_access(request, "appointments")
    if request.method == "POST":
        return _book_chosen(request, access)
    if "slot" in request.GET:
        return _confirm(request, SlotChoice.parse(request.GET["slot"]))
    return _search(request)


def _search(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET or None)
    days: list[dict[str, Any]] = []
    searched = False
    if not form.is_bound or form.is_valid():
        data = form.cleaned_data if form.is_bound else {}
        schedule: Schedule | None = data.get("schedule")
        start = day_start(data.get("date") or form.fields["date"].initial)
        end = start + dt.timedelta(days=SEARCH_DAYS)
        types = form.types_to_search() if form.is_bound else form.types
        found: list[tuple[Slot, AppointmentType]] = []
        for appointment_type in types:
            for slot in free_slots(
                appointment_type,
                start,
                end,
                schedules=[schedule.pk] if schedule else None,
                specialty=data.get("specialty", ""),
                limit=SEARCH_LIMIT,
            ):
                found.append((slot, appointment_type))
        found.sort(key=lambda pair: pair[0])
        days = slot_rows(found[:SEARCH_LIMIT], form.schedules)
        searched = True
    return render(
        request,
        "scheduling/patient_book.html",
        {"form": form, "days": days, "searched": searched, "search_days": SEARCH_DAYS},
    )


def _chosen(choice: SlotChoice | None) -> tuple[AppointmentType, Schedule] | None:
    if choice is None:
        return None
    appointment_type = bookable_types().filter(pk=choice.type_id).first()
    schedule = active_schedules().filter(pk=choice.schedule_id).first()
    if appointment_type is None or schedule is None:
        return None
    return appointment_type, schedule


def _taken(
    request: HttpRequest,
    message: str,
    alternatives: list[Slot],
    appointment_type: AppointmentType,
    schedule: Schedule,
) -> HttpResponse:
    days = slot_rows([(slot, appointment_type) for slot in alternatives], {schedule.pk: schedule})
    return render(
        request,
        "scheduling/patient_taken.html",
        {"message": message, "days": days, "schedule": schedule, "type": appointment_type},
        status=409,
    )


def _confirm(
    request: HttpRequest, choice: SlotChoice | None, form: ConfirmForm | None = None
) -> HttpResponse:
    chosen = _chosen(choice)
    if chosen is None or choice is None:
        messages.error(request, _("This time is not available any more. Please choose another."))
        return redirect("scheduling:book")
    appointment_type, schedule = chosen
    slot = available_for([schedule.clinician_id], appointment_type, choice.starts_at)[
        schedule.clinician_id
    ]
    if slot is None:
        alternatives = alternatives_for(appointment_type, schedule.clinician, choice.starts_at)
        return _taken(
            request,
            _("This time was just taken."),
            alternatives,
            appointment_type,
            schedule,
        )
    location = Location.objects.filter(pk=slot.location_id).first() if slot.location_id else None
    form = form or ConfirmForm(initial={"slot": choice.token})
    context = {
        "form": form,
        "type": appointment_type,
        "schedule": schedule,
        "slot": slot,
        "location": location,
        "policy": change_policy(),
    }
    return render(request, "scheduling/patient_confirm.html", context)


def _book_chosen(request: HttpRequest, access: PatientAccess) -> HttpResponse:
    form = ConfirmForm(request.POST)
    if not form.is_valid():
        return _confirm(request, SlotChoice.parse(request.POST.get("slot", "")), form)
    choice: SlotChoice = form.cleaned_data["slot"]
    chosen = _chosen(choice)
    if chosen is None:
        return _confirm(request, None)
    appointment_type, schedule = chosen
    try:
        appointment = do_book_appointment(
            access,
            appointment_type,
            choice.starts_at,
            [schedule.clinician],
            reason=form.cleaned_data["reason"],
            request=request,
        )
    except SlotTaken as taken:
        return _taken(request, str(taken), taken.alternatives, appointment_type, schedule)
    except SchedulingError as error:
        form.add_error(None, str(error))
        return _confirm(request, choice, form)
    messages.success(request, _("Your appointment is booked. A confirmation is on its way."))
    return redirect("scheduling:appointment", pk=appointment.pk)


@login_required
def reschedule(request: HttpRequest, pk: int) -> HttpResponse:
    """Move to another free slot of the responsible professional (same people, same type)."""
    user = user_of(request)
    appointment, access = get_appointment_for_user(user, pk, request=request)
    policy = change_policy(appointment, access)
    primary = (
        Participant.objects.filter(appointment=appointment, role=Participant.Role.PRIMARY)
        .select_related("user")
        .first()
    )
    schedule = (
        Schedule.objects.select_related("clinician").filter(clinician_id=primary.user_id).first()
        if primary
        else None
    )
    if not policy["may_change"] or schedule is None:
        messages.error(request, policy["refusal"] or _("This appointment cannot be moved online."))
        return redirect("scheduling:appointment", pk=appointment.pk)
    form = MoveForm(request.POST or None)
    days: list[dict[str, Any]] = []
    message = ""
    if request.method == "POST" and form.is_valid():
        choice: SlotChoice = form.cleaned_data["slot"]
        try:
            moved = do_reschedule_appointment(
                access, appointment, choice.starts_at, request=request
            )
        except SlotTaken as taken:
            message = str(taken)
            days = slot_rows(
                [(slot, appointment.type) for slot in taken.alternatives], {schedule.pk: schedule}
            )
        except SchedulingError as error:
            message = str(error)
        else:
            messages.success(request, _("Your appointment has been moved."))
            return redirect("scheduling:appointment", pk=moved.pk)
    if not days:
        start = _date_from(request)
        found = free_slots(
            appointment.type,
            start,
            start + dt.timedelta(days=SEARCH_DAYS),
            schedules=[schedule.pk],
            limit=SEARCH_LIMIT,
        )
        days = slot_rows([(slot, appointment.type) for slot in found], {schedule.pk: schedule})
    context = {
        "appointment": appointment,
        "schedule": schedule,
        "days": days,
        "message": message,
        "form": form,
        "search_days": SEARCH_DAYS,
    }
    return render(request, "scheduling/patient_move.html", context, status=409 if message else 200)


def _date_from(request: HttpRequest) -> dt.datetime:
    today = dt.datetime.now(clinic_zone()).date()
    try:
        day = dt.date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        day = today
    return day_start(max(day, today))
