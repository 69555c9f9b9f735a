"""Device registry pages: a patient's devices (clinic), the clinic-wide registry, my devices.

Every page reaches patient data through `patient_access` (one patient) or `patients_for_user`
(the clinic-wide list); changes go through the registry services, which audit them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import PatientAccess, deny, patients_for_user, sensitivities_for
from apps.records.models import Observation, Source
from apps.records.views.common import paginate, patient_access, render_chart

from ..forms import RegisterDeviceForm, RegistryFilterForm
from ..models import Device
from ..services import DeviceError
from ..services.registry import do_register_device, do_retire_device

TAB = "devices"
LOW_BATTERY = 20  # percent: below it the device is flagged
SILENT_AFTER = dt.timedelta(hours=24)  # no message for longer: the device is flagged
NONCE_KEY = "devices:register-form:{user}:{nonce}"
NONCE_TTL = 24 * 3600


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _devices() -> QuerySet[Device]:
    # The secret is never shown after registration: do not even decrypt it.
    return Device.objects.defer("secret")


def needs_attention(now: dt.datetime) -> Q:
    """Active devices with a low battery, or silent for more than SILENT_AFTER.

    A device never heard from counts as silent once it was registered that long ago.
    """
    cutoff = now - SILENT_AFTER
    return Q(status=Device.Status.ACTIVE) & (
        Q(battery__lt=LOW_BATTERY)
        | Q(last_seen_at__lt=cutoff)
        | Q(last_seen_at__isnull=True, registered_at__lt=cutoff)
    )


def _last_readings(devices: list[Device], sensitivities: frozenset[str]) -> dict[int, list[Any]]:
    """The readings of each device's latest message (one query for all the devices)."""
    wanted = {
        (d.device_id, d.patient_id, d.last_reading_at): d.pk
        for d in devices
        if d.last_reading_at is not None and d.patient_id is not None
    }
    if not wanted:
        return {}
    rows = (
        Observation.objects.filter(
            source=Source.DEVICE,
            device_id__in={key[0] for key in wanted},
            patient_id__in={key[1] for key in wanted},
            effective_at__in={key[2] for key in wanted},
            sensitivity__in=sensitivities,
        )
        .select_related("code")
        .order_by("pk")
    )
    found: dict[int, list[Any]] = {}
    for obs in rows:
        pk = wanted.get((obs.device_id, obs.patient_id, obs.effective_at))
        if pk is not None:
            found.setdefault(pk, []).append(obs)
    return found


def _decorate(devices: list[Device], sensitivities: frozenset[str]) -> list[Device]:
    """Attach the latest readings and the low-battery and silent flags to each device."""
    cutoff = timezone.now() - SILENT_AFTER
    readings = _last_readings(devices, sensitivities)
    for device in devices:
        active = device.status == Device.Status.ACTIVE
        device.last_values = readings.get(device.pk, [])  # type: ignore[attr-defined]
        device.low_battery = (  # type: ignore[attr-defined]
            active and device.battery is not None and device.battery < LOW_BATTERY
        )
        device.silent = active and (  # type: ignore[attr-defined]
            (device.last_seen_at or device.registered_at) < cutoff
        )
    return devices


def _patient_page(
    request: HttpRequest,
    access: PatientAccess,
    form: RegisterDeviceForm,
    *,
    created: dict[str, Any] | None = None,
    errors: list[str] | None = None,
    status: int = 200,
) -> HttpResponse:
    devices = _devices().filter(patient=access.patient).order_by("status", "-registered_at", "-pk")
    page = paginate(request, devices)
    context = {
        "page": page,
        "devices": _decorate(list(page.object_list), access.sensitivities),
        "form": form,
        "created": created,
        "errors": errors or [],
        "low_battery": LOW_BATTERY,
    }
    return render_chart(request, access, TAB, "devices/patient_devices.html", context, status)


def _register(
    request: HttpRequest, access: PatientAccess, form: RegisterDeviceForm
) -> dict[str, Any] | None:
    """Register the device of a valid form; the once-only panel's content, or None (errors)."""
    user = _user(request)
    key = NONCE_KEY.format(user=user.pk, nonce=form.cleaned_data["nonce"])
    if not cache.add(key, 1, timeout=NONCE_TTL):
        form.add_error(
            None,
            _(
                "This form was already sent: the device is registered and its secret was shown "
                "then. If the secret was lost, retire that device and register it again."
            ),
        )
        return None
    registered = False
    try:
        device, secret = do_register_device(
            form.cleaned_data["kind"], access.patient, user, request=request, **form.details()
        )
        registered = True
    except DeviceError as error:
        form.add_error(None, str(error))
        return None
    finally:
        if not registered:
            cache.delete(key)  # let the corrected form be sent again
    return {
        "device": device,
        "secret": secret,
        "topic": device.topic,
        "endpoint": request.build_absolute_uri(reverse("api:devices-ingest")),
    }


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def patient_devices(request: HttpRequest, pid: int) -> HttpResponse:
    """A patient's devices; POST registers one and shows its secret once, in this response."""
    posting = request.method == "POST"
    # A registration is audited by the service; a plain view by the gate.
    access = patient_access(request, pid, "devices", action=None if posting else Action.READ)
    if not posting:
        return _patient_page(request, access, RegisterDeviceForm())
    form = RegisterDeviceForm(request.POST)
    created = _register(request, access, form) if form.is_valid() else None
    if created is None:
        # Nothing was registered, but the page shows the devices again: a read.
        audit(
            Action.READ,
            request=request,
            obj=access.patient,
            patient_id=str(access.patient.pk),
            detail=access.audit_detail(what="devices"),
        )
        response = _patient_page(request, access, form, status=400)
    else:
        response = _patient_page(request, access, RegisterDeviceForm(), created=created)
    # The secret is in this page only: no cache may keep it.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def retire_device(request: HttpRequest, pid: int, device_pk: int) -> HttpResponse:
    """Retire one of this patient's devices for good (the page asks for confirmation first)."""
    access = patient_access(request, pid, "device-retire", action=None)
    device = _devices().filter(pk=device_pk, patient=access.patient).first()
    if device is None:
        raise deny(
            _user(request),
            request=request,
            what="device-retire",
            object_type="devices.device",
            object_id=device_pk,
            patient_id=pid,
        )
    try:
        do_retire_device(device, _user(request), request=request)
    except DeviceError as error:
        return _patient_page(request, access, RegisterDeviceForm(), errors=[str(error)], status=400)
    messages.success(
        request,
        _("The device %(device)s is retired: its later messages will be rejected.")
        % {"device": device.device_id},
    )
    return redirect("devices:patient_devices", pid)


@login_required
def registry(request: HttpRequest) -> HttpResponse:
    """The devices of every patient on my care teams, filtered and paginated."""
    user = _user(request)
    if user.role not in CLINICAL_ROLES:
        raise deny(user, request=request, what="device-registry", object_type="devices.device")
    form = RegistryFilterForm(request.GET or None)
    devices = (
        _devices()
        .filter(patient__in=patients_for_user(user))
        .select_related("patient")
        .order_by("patient__family_name", "patient__given_names", "status", "-registered_at", "pk")
    )
    if form.is_valid():
        if form.cleaned_data["kind"]:
            devices = devices.filter(kind=form.cleaned_data["kind"])
        if form.cleaned_data["status"]:
            devices = devices.filter(status=form.cleaned_data["status"])
        if form.cleaned_data["attention"]:
            devices = devices.filter(needs_attention(timezone.now()))
    page = paginate(request, devices)
    rows = _decorate(list(page.object_list), sensitivities_for(user))
    # One row for the page (a constant cost), naming every patient whose devices it shows.
    audit(
        Action.READ,
        request=request,
        object_type="devices.device",
        detail={
            "what": "device-registry",
            "patients": sorted({d.patient_id for d in rows}),
            "devices": len(rows),
        },
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": page,
        "devices": rows,
        "query": query.urlencode(),
        "low_battery": LOW_BATTERY,
    }
    return render(request, "devices/registry.html", context)


@login_required
def my_devices(request: HttpRequest) -> HttpResponse:
    """The signed-in patient's devices in use (no secret, no registration)."""
    access = patient_access(request, None, "devices")
    devices = (
        _devices()
        .filter(patient=access.patient, status=Device.Status.ACTIVE)
        .order_by("-registered_at", "-pk")
    )
    page = paginate(request, devices)
    context = {
        "page": page,
        "devices": _decorate(list(page.object_list), access.sensitivities),
        "low_battery": LOW_BATTERY,
    }
    return render_chart(request, access, TAB, "devices/my_devices.html", context)
