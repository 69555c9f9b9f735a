"""Devices cast: reference codes loaded, a blood-pressure monitor on `record`, a sender."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache

from apps.devices.models import Device
from apps.devices.protocol import encode_reading
from apps.devices.services.ingest import RawMessage
from apps.devices.services.registry import do_register_device
from apps.records.models import Patient
from apps.records.reference import load_reference_data

# The record and FHIR casts (patients, care team, fhir_client) serve the device tests too.
from tests.interop.conftest import *  # noqa: E402, F403
from tests.records.conftest import *  # noqa: E402, F403

BP = [("8480-6", 128, "mm[Hg]"), ("8462-4", 82, "mm[Hg]")]


@pytest.fixture
def reference(db: None) -> None:
    load_reference_data()


@pytest.fixture(autouse=True)
def _clean_counters() -> None:
    cache.clear()


@pytest.fixture
def device_and_secret(reference: None, record: Patient) -> tuple[Device, str]:
    return do_register_device("blood_pressure", record, None, manufacturer="Omron")


@pytest.fixture
def device(device_and_secret: tuple[Device, str]) -> Device:
    return device_and_secret[0]


@pytest.fixture
def message(device_and_secret: tuple[Device, str]) -> Callable[..., RawMessage]:
    """A signed MQTT message from `device` (overrides go to encode_reading)."""
    device, secret = device_and_secret

    def make(measurements: Any = None, **kwargs: Any) -> RawMessage:
        topic, payload = encode_reading(
            device.device_id, kwargs.pop("secret", secret), measurements or BP, **kwargs
        )
        return RawMessage(payload=payload, transport="mqtt", topic=topic)

    return make


def ago(**delta: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(**delta)
