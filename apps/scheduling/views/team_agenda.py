"""The team agenda: clinicians side by side, by day or by week, in the clinic's zone.

The page reads a fixed number of queries whatever the number of clinicians or appointments:
the organisation's clinicians, the user's care-team colleagues, then the schedules, rules,
exceptions and appointments of the clinicians shown, and which of their patients the user may
see (one query). Patient names appear only for those; other appointments show as "busy".
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from apps.accounts.decorators import staff_required
from apps.accounts.models import CLINICAL_ROLES, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import deny, patients_for_user
from apps.records.models import CareTeamMember

from ..forms_team import AgendaFilterForm
from ..models import AvailabilityException, AvailabilityRule, Participant, Schedule
from ..services.availability import AGENDA_ROLES, agenda_clinicians
from ..services.slots import clinic_zone, windows_of

ROW_MINUTES = 30
FIRST_HOUR, LAST_HOUR = 7, 19
MAX_COLUMNS = 40
SHOWN_STATUSES = ("proposed", "booked", "arrived", "fulfilled", "noshow")


def clinical_user(request: HttpRequest, what: str) -> User:
    user: User = request.user  # type: ignore[assignment]
    if user.role not in CLINICAL_ROLES:
        raise deny(user, request=request, what=what, object_type="scheduling.schedule")
    return user


@dataclass
class Entry:
    starts: dt.datetime  # local
    ends: dt.datetime
    label: str
    kind: str  # appointment | absence
    patient: str = ""
    status: str = ""
    status_label: str = ""
    joint_with: list[str] = field(default_factory=list)
    url: str = ""


@dataclass
class Cell:
    clinician: User
    available: str = ""  # "", "in_person", "video"
    absent: bool = False
    busy: bool = False
    entries: list[Entry] = field(default_factory=list)
    windows: list[str] = field(default_factory=list)
    book_url: str = ""


def _appointment_url(pk: int) -> str:
    try:
        return reverse("scheduling:appointment", args=[pk])
    except NoReverseMatch:  # the appointment pages are not installed
        return ""


def _name(first: str, last: str) -> str:
    return f"{first} {last}".strip()


def _columns(user: User, form: AgendaFilterForm, clinicians: list[User]) -> list[User]:
    """The clinicians to show: chosen ones, or a profession, or the user's care-team circle."""
    by_pk = {c.pk: c for c in clinicians}
    data = form.cleaned_data if form.is_valid() else {}
    chosen = [by_pk[int(pk)] for pk in data.get("clinician", []) if int(pk) in by_pk]
    profession = data.get("profession", "")
    if chosen:
        shown = chosen
    elif profession:
        shown = [c for c in clinicians if c.role == profession]
    else:
        colleagues = set(
            CareTeamMember.objects.filter(
                ended_at__isnull=True,
                care_team__active=True,
                care_team__members__user=user,
                care_team__members__ended_at__isnull=True,
            ).values_list("user_id", flat=True)
        )
        shown = [c for c in clinicians if c.pk in colleagues or c.pk == user.pk]
    if profession:
        shown = [c for c in shown if c.role == profession]
    if not chosen and not profession and user.role in AGENDA_ROLES and user.pk not in by_pk:
        shown = [user, *shown]
    return shown[:MAX_COLUMNS]


def _period(form: AgendaFilterForm) -> tuple[str, dt.date, dt.date]:
    data = form.cleaned_data if form.is_valid() else {}
    view = data.get("view") or "day"
    day = data.get("date") or dt.datetime.now(clinic_zone()).date()
    if view == "week":
        first = day - dt.timedelta(days=day.weekday())
        return view, first, first + dt.timedelta(days=6)
    return view, day, day


def _instant(day: dt.date, hour: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=clinic_zone())


def _load(
    user: User, columns: list[User], first: dt.date, last: dt.date
) -> tuple[dict[int, list[Any]], dict[int, list[Entry]], set[int]]:
    """Windows, entries (absences and appointments) per clinician, and the patients shown."""
    zone = clinic_zone()
    start = _instant(first)
    end = _instant(last + dt.timedelta(days=1))
    ids = [c.pk for c in columns]
    schedules = dict(
        Schedule.objects.filter(clinician_id__in=ids, active=True).values_list("pk", "clinician_id")
    )
    rules: dict[int, list[AvailabilityRule]] = defaultdict(list)
    for rule in AvailabilityRule.objects.filter(schedule_id__in=list(schedules)).select_related(
        "location"
    ):
        rules[schedules[rule.schedule_id]].append(rule)
    windows: dict[int, list[Any]] = {}
    for clinician_id, own in rules.items():
        found = windows_of(own, "in_person", start, end) + windows_of(own, "video", start, end)
        windows[clinician_id] = sorted(
            ((o, c, r) for o, c, r in found if o < end and c > start), key=lambda w: w[0]
        )
    entries: dict[int, list[Entry]] = defaultdict(list)
    for exception in AvailabilityException.objects.filter(
        schedule__clinician_id__in=ids, starts_at__lt=end, ends_at__gt=start
    ).select_related("schedule"):
        entries[exception.schedule.clinician_id].append(
            Entry(
                exception.starts_at.astimezone(zone),
                exception.ends_at.astimezone(zone),
                exception.reason or exception.get_kind_display(),
                "absence",
            )
        )
    participations = list(
        Participant.objects.filter(
            user_id__in=ids,
            appointment__status__in=SHOWN_STATUSES,
            appointment__starts_at__lt=end,
            appointment__ends_at__gt=start,
        )
        .select_related("appointment", "appointment__type", "appointment__patient")
        .order_by("appointment__starts_at")
    )
    appointment_ids = {p.appointment_id for p in participations}
    patient_ids = {p.appointment.patient_id for p in participations}
    together: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for appointment_id, user_id, first_name, last_name in Participant.objects.filter(
        appointment_id__in=appointment_ids
    ).values_list("appointment_id", "user_id", "user__first_name", "user__last_name"):
        together[appointment_id].append((user_id, _name(first_name, last_name)))
    visible = (
        set(patients_for_user(user).filter(pk__in=patient_ids).values_list("pk", flat=True))
        if patient_ids
        else set()
    )
    shown: set[int] = set()
    for participation in participations:
        appointment = participation.appointment
        patient = appointment.patient
        may_see = patient.pk in visible
        if may_see:
            shown.add(patient.pk)
        entries[participation.user_id].append(
            Entry(
                appointment.starts_at.astimezone(zone),
                appointment.ends_at.astimezone(zone),
                appointment.type.label if may_see else _("Busy"),
                "appointment",
                patient=f"{patient.family_name} {patient.given_names}" if may_see else "",
                status=appointment.status,
                status_label=appointment.get_status_display() if may_see else "",
                joint_with=[
                    name
                    for other, name in together[appointment.pk]
                    if other != participation.user_id
                ],
                url=_appointment_url(appointment.pk) if may_see else "",
            )
        )
    return windows, entries, shown


def _book_url(clinician: User, at: dt.datetime) -> str:
    query = {"clinicians": clinician.pk, "date": at.date().isoformat(), "time": f"{at:%H:%M}"}
    return f"{reverse('scheduling:staff_book')}?{urlencode(query)}"


def _window_label(opens: dt.datetime, closes: dt.datetime, rule: AvailabilityRule) -> str:
    zone = clinic_zone()
    where = rule.location.name if rule.location else _("video")
    return f"{opens.astimezone(zone):%H:%M}–{closes.astimezone(zone):%H:%M} · {where}"


def _day_rows(
    columns: list[User],
    day: dt.date,
    windows: dict[int, list[Any]],
    entries: dict[int, list[Entry]],
) -> list[dict[str, Any]]:
    zone = clinic_zone()
    first_hour, last_hour = FIRST_HOUR, LAST_HOUR
    for own in windows.values():
        for opens, closes, _rule in own:
            if opens.astimezone(zone).date() == day:
                first_hour = min(first_hour, opens.astimezone(zone).hour)
                last_hour = max(last_hour, closes.astimezone(zone).hour + 1)
    for own_entries in entries.values():
        for entry in own_entries:
            if entry.kind == "appointment" and entry.starts.date() == day:
                first_hour = min(first_hour, entry.starts.hour)
                last_hour = max(last_hour, entry.ends.hour + 1)
    last_hour = min(last_hour, 24)
    rows = []
    cursor = dt.datetime.combine(day, dt.time(first_hour))
    stop = dt.datetime.combine(day, dt.time(23, 59)) if last_hour == 24 else None
    stop = stop or dt.datetime.combine(day, dt.time(last_hour))
    step = dt.timedelta(minutes=ROW_MINUTES)
    now = dt.datetime.now(zone)
    while cursor < stop:
        row_start = cursor.replace(tzinfo=zone)
        row_end = (cursor + step).replace(tzinfo=zone)
        cells = []
        for clinician in columns:
            cell = Cell(clinician)
            for opens, closes, rule in windows.get(clinician.pk, []):
                if opens <= row_start and row_end <= closes:
                    cell.available = rule.mode
            for entry in entries.get(clinician.pk, []):
                if entry.starts < row_end and row_start < entry.ends:
                    if entry.kind == "absence":
                        cell.absent = True
                    elif row_start <= entry.starts < row_end:
                        cell.entries.append(entry)
                    else:
                        cell.busy = True
            if cell.available and not (cell.absent or cell.busy or cell.entries):
                if row_start > now:
                    cell.book_url = _book_url(clinician, row_start)
            cells.append(cell)
        rows.append({"label": f"{cursor:%H:%M}", "at": row_start, "cells": cells})
        cursor += step
    return rows


def _week_rows(
    columns: list[User],
    first: dt.date,
    windows: dict[int, list[Any]],
    entries: dict[int, list[Entry]],
) -> list[dict[str, Any]]:
    zone = clinic_zone()
    rows = []
    for offset in range(7):
        day = first + dt.timedelta(days=offset)
        cells = []
        for clinician in columns:
            cell = Cell(clinician)
            for opens, closes, rule in windows.get(clinician.pk, []):
                if opens.astimezone(zone).date() == day:
                    cell.windows.append(_window_label(opens, closes, rule))
                    cell.available = cell.available or rule.mode
            for entry in entries.get(clinician.pk, []):
                if entry.starts.date() <= day <= entry.ends.date():
                    if entry.kind == "absence":
                        cell.absent = True
                    if entry.kind == "absence" or entry.starts.date() == day:
                        cell.entries.append(entry)
            cells.append(cell)
        rows.append({"day": day, "cells": cells})
    return rows


@staff_required
def team_agenda(request: HttpRequest) -> HttpResponse:
    user = clinical_user(request, "team-agenda")
    clinicians = list(agenda_clinicians(user).order_by("role", "last_name", "first_name"))
    form = AgendaFilterForm(request.GET or None, clinicians=clinicians)
    if request.GET and not form.is_valid():
        form = AgendaFilterForm(None, clinicians=clinicians)
    view, first, last = _period(form)
    columns = _columns(user, form, clinicians)
    windows, entries, shown = _load(user, columns, first, last)
    rows = (
        _week_rows(columns, first, windows, entries)
        if view == "week"
        else _day_rows(columns, first, windows, entries)
    )
    # One row for the page (a constant cost), naming every patient it shows.
    audit(
        Action.READ,
        request=request,
        object_type="scheduling.appointment",
        detail={
            "what": "team-agenda",
            "patients": sorted(shown),
            "clinicians": [c.pk for c in columns],
            "from": first.isoformat(),
            "to": last.isoformat(),
        },
    )
    span = dt.timedelta(days=7 if view == "week" else 1)
    base = request.GET.copy()

    def link(day: dt.date) -> str:
        query = base.copy()
        query["view"] = view
        query["date"] = day.isoformat()
        return f"?{query.urlencode()}"

    today = dt.datetime.now(clinic_zone()).date()
    context = {
        "form": form,
        "view": view,
        "first": first,
        "last": last,
        "columns": columns,
        "rows": rows,
        "prev_url": link(first - span),
        "next_url": link(first + span),
        "today_url": link(today),
        "book_url": reverse("scheduling:staff_book"),
    }
    if view == "week":
        for row in rows:
            query = base.copy()
            query["view"] = "day"
            query["date"] = row["day"].isoformat()
            row["day_url"] = f"?{query.urlencode()}"
    return render(request, "scheduling/team_agenda.html", context)
