"""Demo devices: each demo patient's home kit and a week of its readings (seed_demo; idempotent).

The history goes through the real ingestion service, so it is stored exactly as live readings
are (signed tokens, unit conversion, dedupe by message id, audit). A second run registers no
device and only fills the time since the last stored reading.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from .models import Device
from .services.ingest import RawMessage, ingest
from .simulator import demo_patients, ensure_kit, series_for

HISTORY_DAYS = 7
BATCH = 1000  # messages per ingest() call


def seed(context: dict[str, Any]) -> None:
    for patient in demo_patients():
        ensure_kit(patient)
    devices = list(
        Device.objects.filter(patient__in=demo_patients(), status=Device.Status.ACTIVE)
        .select_related("patient")
        .order_by("pk")
    )
    now = timezone.now()
    window_start = now - dt.timedelta(days=HISTORY_DAYS)
    batch: list[RawMessage] = []
    for device, series in zip(devices, series_for(devices, anomalies=True), strict=True):
        start = window_start
        if device.last_reading_at and device.last_reading_at > start:
            start = device.last_reading_at + dt.timedelta(minutes=1)
        for at in series.schedule(start, now - dt.timedelta(minutes=1)):
            # The id is the measurement time: a rerun over the same times stores nothing twice.
            _topic, payload, _sample = series.message(at, msg_id=f"demo-{at:%Y%m%dT%H%M%S}")
            batch.append(RawMessage(payload=payload, transport="http", received_at=now))
            if len(batch) >= BATCH:
                ingest(batch)
                batch = []
    if batch:
        ingest(batch)
