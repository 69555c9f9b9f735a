"""Appointments in the patient timeline (patients and their care team alike)."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Concat
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.records.access import PatientAccess
from apps.records.timeline import Source, register

from .models import Appointment, Participant


def _appointments(access: PatientAccess) -> QuerySet[Appointment]:
    if not access.clinical:
        return Appointment.objects.none()
    clinicians = Participant.objects.filter(appointment=OuterRef("pk"))
    # The timeline fetches a page's rows in one query: names come with them, not one by one.
    return Appointment.objects.filter(
        patient=access.patient
    ).annotate(
        tl_clinician=Subquery(
            clinicians.order_by("role", "pk")  # "primary" first
            .annotate(name=Concat("user__first_name", Value(" "), "user__last_name"))
            .values("name")[:1]
        ),
        tl_clinicians=Subquery(
            clinicians.order_by().values("appointment").annotate(n=Count("pk")).values("n"),
            output_field=IntegerField(),
        ),
    )


def _describe(appointment: Appointment, access: PatientAccess) -> tuple[str, str, str, str]:
    title = f"{appointment.type.label} — {appointment.get_status_display()}"
    detail = (getattr(appointment, "tl_clinician", "") or "").strip()
    others = (getattr(appointment, "tl_clinicians", 0) or 0) - 1
    if detail and others > 0:
        detail = _("%(name)s and %(count)s more") % {"name": detail, "count": others}
    url = reverse("scheduling:appointment", args=[appointment.pk])
    return title, detail, url, ""


register(
    Source(
        "appointment",
        gettext_lazy("Appointment"),
        _appointments,
        "starts_at",
        _describe,
        related=("type",),
    )
)
