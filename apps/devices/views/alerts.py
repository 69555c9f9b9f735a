"""Alert pages: the care team's list of alerts, and one alert with its readings and actions."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.accounts.decorators import staff_required
from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import patients_for_user
from apps.records.views.common import paginate

from ..models import Alert
from ..services import DeviceError
from ..services.alerts import describe, do_acknowledge_alert, do_resolve_alert, get_alert_for_user


class HandleAlertForm(forms.Form):
    note = forms.CharField(
        label=gettext_lazy("Note"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("What you did or decided (kept with the alert)."),
    )


class AlertFilterForm(forms.Form):
    state = forms.ChoiceField(
        label=gettext_lazy("State"),
        required=False,
        choices=[("", gettext_lazy("Needing attention")), ("all", gettext_lazy("All"))]
        + list(Alert.State.choices),
    )


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@login_required
def alert(request: HttpRequest, alert_id: int) -> HttpResponse:
    posting = request.method == "POST"
    found, access = get_alert_for_user(
        _user(request), alert_id, request=request, action=None if posting else Action.READ
    )
    form = HandleAlertForm(request.POST or None)
    if posting and form.is_valid():
        handle = do_resolve_alert if "resolve" in request.POST else do_acknowledge_alert
        try:
            handle(found, _user(request), form.cleaned_data["note"], request=request)
        except DeviceError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, _("The alert was updated."))
        # Back to where the form was (the dashboard's banner), if that is on this site.
        target = request.POST.get("next", "")
        if target and url_has_allowed_host_and_scheme(
            target, {request.get_host()}, require_https=request.is_secure()
        ):
            return redirect(target)
        return redirect("devices:alert", found.pk)
    readings = found.readings.select_related("code").order_by("effective_at")
    context = {
        "alert": found,
        "summary": describe(found),
        "readings": readings,
        "patient": access.patient,
        "form": form,
        "escalated_to": list(found.escalated_to.all()),
    }
    return render(request, "devices/alert.html", context)


@staff_required
def alerts(request: HttpRequest) -> HttpResponse:
    """The alerts of the user's patients (care teams only), unhandled ones first."""
    user = _user(request)
    form = AlertFilterForm(request.GET or None)
    state = form.cleaned_data["state"] if form.is_valid() else ""
    queryset = Alert.objects.filter(patient__in=patients_for_user(user).values("pk"))
    if not state:
        queryset = queryset.filter(state__in=Alert.UNHANDLED)
    elif state != "all":
        queryset = queryset.filter(state=state)
    page = paginate(
        request,
        queryset.select_related("patient", "rule", "acknowledged_by", "resolved_by").order_by(
            "-opened_at"
        ),
    )
    rows = [(item, describe(item)) for item in page.object_list]
    audit(
        Action.READ,
        request=request,
        actor=user,
        object_type="devices.alert",
        object_id="list",
        detail={"patients": sorted({item.patient_id for item in page.object_list})},
    )
    return render(
        request, "devices/alerts.html", {"page": page, "rows": rows, "form": form, "state": state}
    )
