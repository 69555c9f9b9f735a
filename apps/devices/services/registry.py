"""The device registry: register, assign, retire (each audited)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import Level, check_patient_access
from apps.records.models import Patient

from ..models import Device, DeviceKind, new_device_secret
from . import DeviceError

DETAIL_FIELDS = ("manufacturer", "model", "serial")


def _check_manager(by: User | None, patient: Patient | None) -> None:
    """Staff on the patient's care team may manage its devices; None is the system (CLI)."""
    if by is None:
        return
    if by.role not in CLINICAL_ROLES:
        raise DeviceError(_("Only clinical staff can manage devices."))
    if patient is not None and check_patient_access(by, patient.pk, need=Level.CLINICAL) is None:
        raise DeviceError(_("You are not on this patient's care team."))


def _audit(device: Device, by: User | None, request: HttpRequest | None, **detail: Any) -> None:
    audit(
        Action.UPDATE if detail.get("change") else Action.CREATE,
        request=request,
        actor=by,
        obj=device,
        object_id=device.device_id,
        patient_id=str(device.patient_id or ""),
        detail={"kind": device.kind, **detail},
    )


@transaction.atomic
def do_register_device(
    kind: str,
    patient: Patient | None,
    by: User | None,
    *,
    request: HttpRequest | None = None,
    **details: str,
) -> tuple[Device, str]:
    """A new active device (assigned to `patient` if given) and its secret, shown only once."""
    if kind not in DeviceKind.values:
        raise DeviceError(
            _("Unknown device kind %(kind)s; use one of %(kinds)s.")
            % {"kind": kind, "kinds": ", ".join(DeviceKind.values)}
        )
    unknown = set(details) - set(DETAIL_FIELDS)
    if unknown:
        raise DeviceError(_("Unknown device details: %s.") % ", ".join(sorted(unknown)))
    _check_manager(by, patient)
    secret = new_device_secret()
    device = Device.objects.create(
        kind=kind, patient=patient, secret=secret, registered_by=by, **details
    )
    _audit(device, by, request, change="")
    return device, secret


@transaction.atomic
def do_assign_device(
    device: Device, patient: Patient, by: User | None, *, request: HttpRequest | None = None
) -> Device:
    """Give an active device to `patient` (its earlier readings stay with the earlier patient)."""
    device = Device.objects.select_for_update().get(pk=device.pk)
    if device.status == Device.Status.RETIRED:
        raise DeviceError(_("A retired device cannot be assigned."))
    _check_manager(by, patient)
    if device.patient_id is not None and device.patient_id != patient.pk:
        _check_manager(by, device.patient)
    previous = device.patient_id
    device.patient = patient
    device.save(update_fields=["patient"])
    _audit(device, by, request, change="assign", previous_patient=str(previous or ""))
    return device


@transaction.atomic
def do_retire_device(
    device: Device, by: User | None, *, request: HttpRequest | None = None
) -> Device:
    """Retire a device for good: its later messages go to the dead letters."""
    device = Device.objects.select_for_update().get(pk=device.pk)
    if device.status == Device.Status.RETIRED:
        raise DeviceError(_("This device is already retired."))
    _check_manager(by, device.patient)
    device.status = Device.Status.RETIRED
    device.retired_at = timezone.now()
    device.retired_by = by
    device.save(update_fields=["status", "retired_at", "retired_by"])
    _audit(device, by, request, change="retire")
    return device
