"""Demo devices: each demo patient's home kit and a week of its readings (seed_demo; idempotent).

The history goes through the real ingestion service, so it is stored exactly as live readings
are (signed tokens, unit conversion, dedupe by message id, audit). A second run registers no
device and only fills the time since the last stored reading.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from apps.records.access import get_patient_for_user

from .models import Alert, Device, OnCallShift
from .services.ingest import RawMessage, ingest
from .services.rules import do_apply_template, suggested_templates
from .simulator import demo_patients, ensure_kit, series_for

HISTORY_DAYS = 7
BATCH = 1000  # messages per ingest() call


# Alerts measured longer ago than this are shown as handled by the nurse; newer ones stay open.
HANDLED_BEFORE = dt.timedelta(hours=12)


def seed(context: dict[str, Any]) -> None:
    users = context["users"]
    physician, nurse = users["physician"], users["nurse"]
    for patient in demo_patients():
        ensure_kit(patient)
        # The defaults that suit the patient's conditions, as the physician would apply them.
        access = get_patient_for_user(physician, patient.pk, action=None)
        for template in suggested_templates(patient):
            do_apply_template(access, template.key)
    _on_call(physician, nurse)
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
    _handle_old_alerts(nurse, now)


def _on_call(physician: Any, nurse: Any) -> None:
    """The nurse is called first, then the physician, for the coming week."""
    start = timezone.now().replace(minute=0, second=0, microsecond=0)
    for rank, user in enumerate([nurse, physician], start=1):
        if not OnCallShift.objects.filter(user=user, ends_at__gt=start).exists():
            OnCallShift.objects.create(
                user=user, starts_at=start, ends_at=start + dt.timedelta(days=7), rank=rank
            )


def _handle_old_alerts(nurse: Any, now: dt.datetime) -> None:
    """The week's history raised alerts just now: those of past days were handled back then."""
    for alert in Alert.objects.filter(
        state__in=Alert.UNHANDLED, measured_at__lt=now - HANDLED_BEFORE
    ):
        handled = alert.measured_at + dt.timedelta(minutes=25)
        alert.opened_at = alert.measured_at + dt.timedelta(seconds=2)
        alert.state = Alert.State.RESOLVED
        alert.acknowledged_at = alert.resolved_at = handled
        alert.acknowledged_by = alert.resolved_by = nurse
        alert.escalate_at = None
        alert.note = "Patient joint par téléphone, mesure refaite : valeur normale."
        alert.save()
