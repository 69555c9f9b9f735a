"""Alerts in the patient timeline (for the care team; patients follow their readings instead)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from apps.records.access import PatientAccess
from apps.records.timeline import Source, register

from .models import Alert
from .services.alerts import describe


def _alerts(access: PatientAccess) -> QuerySet[Alert]:
    if access.is_patient_self or not access.clinical:
        return Alert.objects.none()
    return Alert.objects.filter(patient=access.patient)


def _describe(alert: Alert, access: PatientAccess) -> tuple[str, str, str, str]:
    detail = str(alert.get_state_display()).capitalize()
    handled_by = alert.resolved_by or alert.acknowledged_by
    if handled_by is not None:
        detail += " — " + handled_by.get_full_name()
    flag = "HH" if alert.severity == "critical" else "H"
    return describe(alert), detail, reverse("devices:alert", args=[alert.pk]), flag


register(
    Source(
        "alert",
        _("Monitoring alert"),
        _alerts,
        "opened_at",
        _describe,
        related=("rule", "acknowledged_by", "resolved_by"),
    )
)
