"""Follow-ups to book (clinic): the open and overdue ones of my patients; ask for one."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from apps.accounts.decorators import staff_required
from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import deny, get_patient_for_user, patients_for_user
from apps.records.models import Patient
from apps.records.views.common import paginate

from ..models import AppointmentType
from ..services import SchedulingError
from ..services.follow_ups import (
    clinic_today,
    do_cancel_follow_up,
    do_request_follow_up,
    follow_ups_for_user,
    get_follow_up_for_user,
)


class FollowUpForm(forms.Form):
    patient: forms.ModelChoiceField[Patient] = forms.ModelChoiceField(
        label=gettext_lazy("Patient"), queryset=Patient.objects.none()
    )
    type = forms.ModelChoiceField(
        label=gettext_lazy("Appointment type"),
        queryset=AppointmentType.objects.filter(active=True).order_by("name"),
    )
    due_by = forms.DateField(
        label=gettext_lazy("To book by"), widget=forms.DateInput(attrs={"type": "date"})
    )
    clinician = forms.ModelChoiceField(
        label=gettext_lazy("With (optional)"),
        queryset=User.objects.filter(
            is_active=True, schedule__active=True, role__in=CLINICAL_ROLES
        ).order_by("last_name", "first_name"),
        required=False,
    )
    note = forms.CharField(label=gettext_lazy("Note for the team"), max_length=300, required=False)

    def __init__(self, user: User, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        patient: Any = self.fields["patient"]
        patient.queryset = patients_for_user(user).order_by("family_name", "given_names")
        patient.label_from_instance = lambda p: f"{p.family_name} {p.given_names}"
        clinician: Any = self.fields["clinician"]
        clinician.label_from_instance = lambda u: u.get_full_name()


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _cancel(request: HttpRequest, user: User) -> HttpResponse:
    follow_up, access = get_follow_up_for_user(user, request.POST.get("follow_up"), request=request)
    try:
        do_cancel_follow_up(access, follow_up, request=request)
    except SchedulingError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("The follow-up is no longer to book."))
    return redirect("scheduling:follow_ups")


@staff_required
@require_http_methods(["GET", "POST"])
def follow_ups(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if user.role not in CLINICAL_ROLES:
        raise deny(user, request=request, what="follow-ups")
    if request.method == "POST" and request.POST.get("action") == "cancel":
        return _cancel(request, user)
    initial = {"patient": request.GET.get("patient"), "due_by": request.GET.get("due_by")}
    form = FollowUpForm(user, data=request.POST or None, initial=initial)
    if request.method == "POST":
        # Someone else's patient: 404, audited, before the form says anything about them.
        access = get_patient_for_user(
            user, request.POST.get("patient"), request=request, what="follow-up", action=None
        )
        if form.is_valid():
            data = form.cleaned_data
            try:
                do_request_follow_up(
                    access,
                    data["type"],
                    data["due_by"],
                    data["clinician"],
                    data["note"],
                    request=request,
                )
            except SchedulingError as error:
                form.add_error(None, str(error))
            else:
                messages.success(request, _("Follow-up added to the list."))
                return redirect("scheduling:follow_ups")
    page = paginate(request, follow_ups_for_user(user))
    audit(
        Action.READ,
        request=request,
        actor=user,
        object_type="scheduling.followuprequest",
        detail={"what": "follow-ups", "patients": sorted({f.patient_id for f in page})},
    )
    return render(
        request,
        "scheduling/follow_ups.html",
        {"page": page, "form": form, "today": clinic_today()},
        status=400 if form.errors else 200,
    )
