"""Video consultations in the patient timeline (patients and their care team alike).

An ended call is listed once, as a video consultation with its real period, duration, the
people who took part and its recordings; the records app's Encounter source leaves out the
encounters that have a consultation, so the call is not listed twice.
"""

from __future__ import annotations

from django.db.models import (
    Count,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from apps.records.access import PatientAccess
from apps.records.timeline import Source, register

from .models import Attendance, Consultation, Recording, Seat


def _count(queryset: QuerySet[Attendance] | QuerySet[Recording]) -> Subquery:
    return Subquery(
        queryset.order_by().values("consultation").annotate(n=Count("pk")).values("n"),
        output_field=IntegerField(),
    )


def _consultations(access: PatientAccess) -> QuerySet[Consultation]:
    if not access.clinical:
        return Consultation.objects.none()
    admitted = Attendance.objects.filter(
        consultation=OuterRef("pk"), admitted_at__isnull=False, denied_at__isnull=True
    )
    # The timeline fetches a page's rows in one query: names and counts come with them.
    return (
        Consultation.objects.filter(
            patient=access.patient,
            status=Consultation.Status.ENDED,
            started_at__isnull=False,
        )
        .filter(
            Q(encounter__isnull=True) | Q(encounter__sensitivity__in=sorted(access.sensitivities))
        )
        .annotate(
            tl_clinician=Subquery(
                admitted.filter(seat=Seat.CLINICIAN)
                .order_by("admitted_at", "pk")
                .values("display_name")[:1]
            ),
            tl_people=_count(admitted),
            tl_recordings=_count(
                Recording.objects.filter(
                    consultation=OuterRef("pk"), status=Recording.Status.COMPLETE
                )
            ),
        )
    )


def _describe(consultation: Consultation, access: PatientAccess) -> tuple[str, str, str, str]:
    title = _("Video consultation")
    duration = consultation.duration
    if duration is not None:
        minutes = max(1, round(duration.total_seconds() / 60))
        title += " — " + ngettext("%(n)s minute", "%(n)s minutes", minutes) % {"n": minutes}
    parts = []
    clinician = (getattr(consultation, "tl_clinician", "") or "").strip()
    people = getattr(consultation, "tl_people", 0) or 0
    if clinician:
        others = people - 1
        parts.append(
            _("%(name)s and %(count)s more") % {"name": clinician, "count": others}
            if others > 0
            else clinician
        )
    recordings = getattr(consultation, "tl_recordings", 0) or 0
    if recordings:
        parts.append(
            ngettext("%(n)s recording", "%(n)s recordings", recordings) % {"n": recordings}
        )
    url = reverse("teleconsult:summary", args=[consultation.room])
    return title, " · ".join(parts), url, ""


register(
    Source(
        "consultation",
        gettext_lazy("Video consultation"),
        _consultations,
        "started_at",
        _describe,
    )
)
