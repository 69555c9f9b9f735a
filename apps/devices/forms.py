"""Forms of the device pages: registering a device, filtering the clinic's registry."""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import Device, DeviceKind


class RegisterDeviceForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind of device"), choices=DeviceKind.choices)
    manufacturer = forms.CharField(label=_("Manufacturer"), max_length=100, required=False)
    model = forms.CharField(label=_("Model"), max_length=100, required=False)
    serial = forms.CharField(label=_("Serial number"), max_length=100, required=False)
    # One registration per form: a reload or a double click must not create a second device.
    nonce = forms.CharField(widget=forms.HiddenInput, min_length=16, max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"nonce": secrets.token_urlsafe(16)})
        super().__init__(*args, **kwargs)

    def details(self) -> dict[str, str]:
        """The optional identification of the device, as `do_register_device` takes it."""
        return {name: self.cleaned_data[name] for name in ("manufacturer", "model", "serial")}


class RegistryFilterForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Kind"), choices=[("", _("All kinds")), *DeviceKind.choices], required=False
    )
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[("", _("All statuses")), *Device.Status.choices],
        required=False,
    )
    attention = forms.BooleanField(
        label=_("Needs attention only"),
        required=False,
        help_text=_("Low battery, or no message for more than 24 hours."),
    )
