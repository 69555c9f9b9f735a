"""The patient's appointments: the list, one appointment (patient and care team), waiting list.

Access: `get_appointment_for_user` (the patient or the care team; 404 and audited otherwise);
the list pages read the signed-in patient's own record only. Changes go through the booking
and waiting-list services, which check the clinic's policy again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from apps.records.access import PatientAccess

from ..forms_patient import CancelForm, JoinWaitingListForm, StatusForm
from ..models import ACTIVE_STATUSES, Appointment, Mode, Participant, WaitingListEntry
from ..services import SchedulingError
from ..services.booking import (
    CLOSING,
    do_cancel_appointment,
    do_set_status,
    get_appointment_for_user,
)
from ..services.waitlist_actions import (
    OPEN_STATUSES,
    do_accept_offer,
    do_join_waiting_list,
    do_withdraw_waiting_entry,
    get_waiting_entry_for_user,
    offer_is_open,
)
from .patient_common import own_access, user_of

PAGE_SIZE = 10


def change_policy(
    appointment: Appointment | None = None, access: PatientAccess | None = None
) -> dict[str, Any]:
    """The clinic's rule in one sentence, and whether this person may change it now."""
    hours = settings.SCHEDULING_PATIENT_CHANGE_HOURS
    sentence = _("Changes online until %(hours)s h before the appointment.") % {"hours": hours}
    if appointment is None or access is None:
        return {"sentence": sentence, "may_change": False, "refusal": ""}
    if not appointment.is_active:
        return {"sentence": sentence, "may_change": False, "refusal": ""}
    if not access.is_patient_self:
        return {"sentence": sentence, "may_change": True, "refusal": ""}
    too_late = timezone.now() > appointment.starts_at - dt.timedelta(hours=hours)
    refusal = (
        _("It is too late to change this appointment online; please call the clinic.")
        if too_late
        else ""
    )
    return {"sentence": sentence, "may_change": not too_late, "refusal": refusal}


def _with_clinicians(queryset: Any) -> Any:
    return queryset.select_related("type", "location").prefetch_related(
        Prefetch(
            "participants",
            queryset=Participant.objects.select_related("user").order_by("-role", "pk"),
        )
    )


@login_required
def my_appointments(request: HttpRequest) -> HttpResponse:
    access = own_access(request, "appointments", read=True)
    now = timezone.now()
    mine = Appointment.objects.filter(patient=access.patient)
    coming = Q(status__in=ACTIVE_STATUSES, ends_at__gt=now)
    upcoming = Paginator(_with_clinicians(mine.filter(coming)).order_by("starts_at"), PAGE_SIZE)
    past = Paginator(_with_clinicians(mine.exclude(coming)).order_by("-starts_at"), PAGE_SIZE)
    waiting = list(
        WaitingListEntry.objects.filter(patient=access.patient, status__in=OPEN_STATUSES)
        .select_related("schedule__clinician", "type")
        .order_by("created_at")
    )
    context = {
        "upcoming": upcoming.get_page(request.GET.get("upcoming")),
        "past": past.get_page(request.GET.get("past")),
        "waiting": waiting,
        "offers": [entry for entry in waiting if offer_is_open(entry, now)],
        "policy": change_policy(),
    }
    return render(request, "scheduling/patient_appointments.html", context)


def _video_entry(
    appointment: Appointment, user: Any, participants: list[Participant], is_patient_self: bool
) -> dict[str, Any] | None:
    """The "join the video consultation" box: for the patient and the clinicians taking part.

    The room (apps/teleconsult) lets the patient in from TELECONSULT_EARLY_MINUTES before the
    start; before that the page says when it opens.
    """
    if appointment.mode != Mode.VIDEO or not appointment.is_active:
        return None
    taking_part = any(p.user_id == user.pk and p.active for p in participants)
    if not is_patient_self and not taking_part:
        return None
    now = timezone.now()
    opens_at = appointment.starts_at - dt.timedelta(minutes=settings.TELECONSULT_EARLY_MINUTES)
    closes_at = appointment.ends_at + dt.timedelta(minutes=settings.TELECONSULT_LATE_MINUTES)
    if now > closes_at:
        return None
    join_url = reverse("teleconsult:appointment", args=[appointment.pk])
    return {
        "open": taking_part or opens_at <= now,
        "opens_at": opens_at,
        "join_url": join_url,
        "check_url": reverse("teleconsult:check") + "?next=" + join_url,
    }


def _transitions(appointment: Appointment) -> list[tuple[str, str]]:
    """The statuses staff may set now, with their labels."""
    found = []
    for status, allowed_from in CLOSING.items():
        if appointment.status not in allowed_from:
            continue
        if status == Appointment.Status.NOSHOW and timezone.now() < appointment.starts_at:
            continue
        found.append((str(status), str(Appointment.Status(status).label)))
    return found


@login_required
@require_http_methods(["GET", "POST"])
def appointment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = user_of(request)
    appointment, access = get_appointment_for_user(
        user, pk, request=request, action="read" if request.method == "GET" else None
    )
    cancel_form = CancelForm(prefix="cancel")
    error = ""
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "cancel":
                cancel_form = CancelForm(request.POST, prefix="cancel")
                if cancel_form.is_valid():
                    do_cancel_appointment(
                        access,
                        appointment,
                        reason=cancel_form.cleaned_data["reason"],
                        request=request,
                    )
                    messages.success(request, _("The appointment is cancelled."))
                    return redirect("scheduling:appointment", pk=appointment.pk)
            elif action == "status" and not access.is_patient_self:
                status_form = StatusForm(request.POST)
                if not status_form.is_valid():
                    raise SchedulingError(_("Choose a status."))
                do_set_status(access, appointment, status_form.cleaned_data["status"])
                messages.success(request, _("The status is saved."))
                return redirect("scheduling:appointment", pk=appointment.pk)
            else:
                error = _("This action is not available.")
        except SchedulingError as refused:
            error = str(refused)
        appointment.refresh_from_db()
    participants = list(
        appointment.participants.select_related("user").order_by("-role", "pk").all()
    )
    context = {
        "appointment": appointment,
        "access": access,
        "is_patient_self": access.is_patient_self,
        "participants": participants,
        "policy": change_policy(appointment, access),
        "transitions": [] if access.is_patient_self else _transitions(appointment),
        "cancel_form": cancel_form,
        "error": error,
        "rescheduled_to": Appointment.objects.filter(rescheduled_from=appointment).first(),
        "video": _video_entry(appointment, user, participants, access.is_patient_self),
    }
    status = 400 if error or cancel_form.errors else 200
    return render(request, "scheduling/appointment.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def waiting_list(request: HttpRequest) -> HttpResponse:
    access = own_access(request, "waiting-list", read=request.method == "GET")
    upcoming = Appointment.objects.filter(
        patient=access.patient, status__in=ACTIVE_STATUSES, starts_at__gt=timezone.now()
    ).select_related("type")
    form = JoinWaitingListForm(upcoming=upcoming)
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "join":
                form = JoinWaitingListForm(request.POST, upcoming=upcoming)
                if form.is_valid():
                    do_join_waiting_list(
                        access,
                        form.cleaned_data["schedule"],
                        form.cleaned_data["type"],
                        form.cleaned_data["latest"],
                        current=form.cleaned_data["current"],
                        request=request,
                    )
                    messages.success(request, _("You are on the waiting list."))
                    return redirect("scheduling:waiting_list")
                status = 400
            elif action in ("withdraw", "accept"):
                entry, entry_access = get_waiting_entry_for_user(
                    user_of(request), request.POST.get("entry"), request=request
                )
                if entry.patient_id != access.patient.pk:  # staff use the clinic's pages
                    raise SchedulingError(_("This action is not available."))
                if action == "withdraw":
                    do_withdraw_waiting_entry(entry_access, entry, request=request)
                    messages.success(request, _("You have left the waiting list."))
                    return redirect("scheduling:waiting_list")
                appointment = do_accept_offer(entry_access, entry, request=request)
                messages.success(request, _("Your appointment is booked."))
                return redirect("scheduling:appointment", pk=appointment.pk)
            else:
                raise SchedulingError(_("This action is not available."))
        except SchedulingError as refused:
            messages.error(request, str(refused))
            return redirect("scheduling:waiting_list")
    now = timezone.now()
    entries = list(
        WaitingListEntry.objects.filter(patient=access.patient)
        .select_related("schedule__clinician", "type", "current__type")
        .order_by("-created_at")[:50]
    )
    for entry in entries:
        entry.offer_open = offer_is_open(entry, now)  # type: ignore[attr-defined]
        entry.may_withdraw = entry.status in OPEN_STATUSES  # type: ignore[attr-defined]
    return render(
        request,
        "scheduling/patient_waiting_list.html",
        {"form": form, "entries": entries},
        status=status,
    )
