"""The timeline (journal de bord): everything that happened to a patient, newest first.

It is read from the record's own tables (one UNION ALL query for the page, then one query per
kind shown), never from a copy that could drift. Later capabilities (messages, consultations,
device alerts, invoices) add their kinds with `register`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.db import models
from django.db.models import CharField, F, Value
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from .access import PatientAccess
from .models import (
    AllergyIntolerance,
    ClinicalNote,
    Condition,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    MedicationStatement,
    Observation,
    Prescription,
)


@dataclass(frozen=True)
class Entry:
    kind: str
    label: str | Promise
    at: dt.datetime
    title: str
    detail: str
    url: str
    flag: str = ""


@dataclass(frozen=True)
class Source:
    """One kind of timeline entry: where its rows come from and how each is shown."""

    kind: str
    label: str | Promise
    # The patient's rows this access may see, with the field that dates them.
    queryset: Callable[[PatientAccess], models.QuerySet[Any]]
    date_field: str
    # Turn the rows of one page into entries (receives the objects, already fetched).
    describe: Callable[[Any, PatientAccess], tuple[str, str, str, str]]
    related: tuple[str, ...] = ()


SOURCES: dict[str, Source] = {}


def register(source: Source) -> None:
    SOURCES[source.kind] = source


def kinds() -> list[tuple[str, str | Promise]]:
    return [(source.kind, source.label) for source in SOURCES.values()]


def _url(access: PatientAccess, clinic: str, mine: str | None, *args: Any) -> str:
    if access.is_patient_self:
        return reverse(mine, args=args) if mine else ""
    return reverse(clinic, args=args or [access.patient.pk])


def _union(
    access: PatientAccess,
    wanted: Iterable[str],
    since: dt.datetime | None,
    until: dt.datetime | None,
) -> models.QuerySet[Any] | None:
    parts = []
    for kind in wanted:
        source = SOURCES[kind]
        queryset = source.queryset(access)
        if since is not None:
            queryset = queryset.filter(**{f"{source.date_field}__gte": since})
        if until is not None:
            queryset = queryset.filter(**{f"{source.date_field}__lt": until})
        parts.append(
            queryset.order_by()
            .annotate(tl_kind=Value(kind, output_field=CharField()), tl_at=F(source.date_field))
            .values_list("tl_kind", "pk", "tl_at")
        )
    if not parts:
        return None
    first, *rest = parts
    newest_first = ("-tl_at", "tl_kind", "-pk")
    return (
        first.union(*rest, all=True).order_by(*newest_first)
        if rest
        else first.order_by(*newest_first)
    )


def timeline_page(
    access: PatientAccess,
    *,
    page: Any = 1,
    kinds_wanted: Iterable[str] = (),
    since: dt.date | None = None,
    until: dt.date | None = None,
    per_page: int = 30,
) -> tuple[Page, list[Entry]]:
    """One page of the timeline, filtered by kind and by date (inclusive days)."""
    wanted = [kind for kind in kinds_wanted if kind in SOURCES] or list(SOURCES)
    start = _day_start(since) if since else None
    end = _day_start(until + dt.timedelta(days=1)) if until else None
    union = _union(access, wanted, start, end)
    rows: Any = union if union is not None else []
    page_obj = Paginator(rows, per_page).get_page(page)
    by_kind: dict[str, list[int]] = {}
    for kind, pk, _at in page_obj.object_list:
        by_kind.setdefault(kind, []).append(pk)
    objects: dict[tuple[str, int], Any] = {}
    for kind, ids in by_kind.items():
        source = SOURCES[kind]
        queryset = source.queryset(access).filter(pk__in=ids)
        if source.related:
            queryset = queryset.select_related(*source.related)
        for obj in queryset:
            objects[(kind, obj.pk)] = obj
    entries = []
    for kind, pk, at in page_obj.object_list:
        obj = objects.get((kind, pk))
        if obj is None:
            continue
        title, detail, url, flag = SOURCES[kind].describe(obj, access)
        entries.append(Entry(kind, SOURCES[kind].label, at, title, detail, url, flag))
    return page_obj, entries


def _day_start(day: dt.date) -> dt.datetime:
    from django.utils import timezone

    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


# ---------------------------------------------------------------------------------------------
# The record's own kinds


def _visible(model: type[models.Model]) -> Callable[[PatientAccess], models.QuerySet[Any]]:
    return lambda access: access.visible(model._default_manager.all())


register(
    Source(
        "encounter",
        _("Encounter"),
        # A video consultation's Encounter is listed by its consultation (apps/teleconsult).
        lambda access: access.visible(Encounter.objects.filter(consultation__isnull=True)),
        "started_at",
        lambda obj, access: (
            str(obj.get_kind_display()).capitalize(),
            obj.reason,
            "",
            "",
        ),
    )
)
register(
    Source(
        "condition",
        _("Problem"),
        _visible(Condition),
        "recorded_at",
        lambda obj, access: (obj.code.label, obj.get_clinical_status_display(), "", ""),
        related=("code",),
    )
)
register(
    Source(
        "allergy",
        _("Allergy"),
        _visible(AllergyIntolerance),
        "recorded_at",
        lambda obj, access: (obj.substance.label, obj.reaction, "", ""),
        related=("substance",),
    )
)
register(
    Source(
        "medication",
        _("Medication"),
        lambda access: access.visible(MedicationStatement.objects.filter(prescription=None)),
        "recorded_at",
        lambda obj, access: (obj.medication.name, obj.dosage, "", ""),
        related=("medication",),
    )
)
register(
    Source(
        "prescription",
        _("Prescription"),
        lambda access: access.visible(Prescription.objects.exclude(signed_at=None)),
        "signed_at",
        lambda obj, access: (
            obj.number,
            str(obj.get_status_display()),
            reverse("records:prescription", args=[obj.pk]),
            "",
        ),
    )
)
register(
    Source(
        "observation",
        _("Result"),
        _visible(Observation),
        "effective_at",
        lambda obj, access: (
            obj.code.label,
            obj.display_value,
            _url(access, "records:observation", "records:my_observation", obj.pk),
            obj.interpretation if obj.interpretation != "N" else "",
        ),
        related=("code",),
    )
)
register(
    Source(
        "report",
        _("Report"),
        _visible(DiagnosticReport),
        "issued_at",
        lambda obj, access: (
            obj.code.label,
            obj.performer,
            _url(access, "records:reports", "records:my_reports"),
            "",
        ),
        related=("code",),
    )
)
register(
    Source(
        "document",
        _("Document"),
        _visible(DocumentReference),
        "recorded_at",
        lambda obj, access: (
            obj.title,
            str(obj.get_category_display()),
            reverse("records:document_download", args=[obj.pk]),
            "",
        ),
    )
)
register(
    Source(
        "note",
        _("Note"),
        # Patients read their notes in "download my data"; the timeline shows staff the titles.
        lambda access: (
            ClinicalNote.objects.none()
            if access.is_patient_self
            else access.visible(ClinicalNote.objects.all())
        ),
        "signed_at",
        lambda obj, access: (
            obj.title,
            str(obj.get_kind_display()),
            _url(access, "records:notes", None) + f"#note-{obj.pk}",
            "",
        ),
    )
)
