"""The case summary prepared for a meeting, built from the patient's record.

Plain text (the presenter edits it before the meeting): identity, active problems, allergies,
current medications, the latest value of each measured quantity with its date, the latest
reports' conclusions and the open care plan with its progress. Only what the presenter may
see (`PatientAccess.visible`: sensitive categories their role may not read stay out).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.utils import timezone
from django.utils.translation import gettext as _

from apps.records.access import PatientAccess
from apps.records.models import (
    AllergyIntolerance,
    Condition,
    DiagnosticReport,
    MedicationStatement,
    Observation,
)

from ..models import Activity
from .plans import open_plans, plan_progress

ZONE = ZoneInfo("Europe/Zurich")
MAX_OBSERVATIONS = 8
MAX_REPORTS = 3
MAX_ACTIVITIES = 6
CONCLUSION_MAX = 400


def _day(value: dt.date | dt.datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        value = value.astimezone(ZONE).date()
    return value.strftime("%d.%m.%Y")


def _age(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def _section(title: str, lines: list[str]) -> list[str]:
    return [title, *(lines or ["- " + _("none recorded")]), ""]


def _identity(access: PatientAccess) -> str:
    patient = access.patient
    today = timezone.localdate()
    return _("%(name)s, born %(birth)s (%(age)s years), %(sex)s") % {
        "name": patient.full_name,
        "birth": _day(patient.birth_date),
        "age": _age(patient.birth_date, today),
        "sex": patient.get_sex_display(),
    }


def _conditions(access: PatientAccess) -> list[str]:
    rows = (
        access.visible(Condition.objects.all())
        .filter(clinical_status__in=["active", "recurrence"])
        .select_related("code")
        .order_by("onset_date", "pk")
    )
    lines = []
    for row in rows:
        line = f"- {row.code.label}"
        if row.onset_date:
            line += " " + _("(since %(date)s)") % {"date": _day(row.onset_date)}
        if row.note:
            line += f" — {row.note}"
        lines.append(line)
    return lines


def _allergies(access: PatientAccess) -> list[str]:
    rows = (
        access.visible(AllergyIntolerance.objects.all())
        .filter(clinical_status="active")
        .select_related("substance")
        .order_by("pk")
    )
    lines = []
    for row in rows:
        line = f"- {row.substance.label} ({row.get_criticality_display()})"
        if row.reaction:
            line += f": {row.reaction}"
        lines.append(line)
    return lines


def _medications(access: PatientAccess) -> list[str]:
    rows = (
        access.visible(MedicationStatement.objects.all())
        .filter(status="active")
        .select_related("medication")
        .order_by("medication__name", "pk")
    )
    lines = []
    for row in rows:
        medication = row.medication
        line = f"- {medication.name}"
        if medication.strength:
            line += f" {medication.strength}"
        if row.dosage:
            line += f", {row.dosage}"
        if row.started_on:
            line += " " + _("(since %(date)s)") % {"date": _day(row.started_on)}
        lines.append(line)
    return lines


def _observations(access: PatientAccess) -> list[str]:
    # The latest value of each quantity (PostgreSQL DISTINCT ON), the most recent first.
    latest = list(
        access.visible(Observation.objects.all())
        .select_related("code")
        .order_by("code_id", "-effective_at")
        .distinct("code_id")
    )
    latest.sort(key=lambda row: row.effective_at, reverse=True)
    lines = []
    for row in latest[:MAX_OBSERVATIONS]:
        line = f"- {row.code.label}: {row.display_value} ({_day(row.effective_at)})"
        if row.interpretation and row.interpretation != "N":
            line += f" — {row.get_interpretation_display()}"
        lines.append(line)
    return lines


def _reports(access: PatientAccess) -> list[str]:
    rows = (
        access.visible(DiagnosticReport.objects.all())
        .select_related("code")
        .order_by("-issued_at", "-pk")[:MAX_REPORTS]
    )
    lines = []
    for row in rows:
        conclusion = " ".join((row.conclusion or "").split())
        if len(conclusion) > CONCLUSION_MAX:
            conclusion = conclusion[: CONCLUSION_MAX - 1] + "…"
        line = f"- {_day(row.issued_at)} {row.code.label}"
        lines.append(f"{line}: {conclusion}" if conclusion else line)
    return lines


def _plan(access: PatientAccess) -> list[str]:
    plan = open_plans(access.patient.pk).order_by("-created_at", "-pk").first()
    if plan is None:
        return []
    lines = [
        "- "
        + _("%(title)s (%(status)s), %(progress)s %% done")
        % {
            "title": plan.title,
            "status": plan.get_status_display(),
            "progress": plan_progress(plan),
        }
    ]
    pending = plan.activities.exclude(
        status__in=[Activity.Status.COMPLETED, Activity.Status.CANCELLED]
    ).order_by("due_date", "order", "pk")[:MAX_ACTIVITIES]
    for activity in pending:
        line = f"  · {activity.title}"
        if activity.due_date:
            line += " " + _("(due %(date)s)") % {"date": _day(activity.due_date)}
        lines.append(line)
    if plan.next_follow_up:
        lines.append("  · " + _("next follow-up: %(date)s") % {"date": _day(plan.next_follow_up)})
    return lines


def build_case_summary(access: PatientAccess) -> str:
    """The summary a presenter starts from (plain text, in the active language)."""
    lines = [_identity(access), ""]
    lines += _section(_("Active problems:"), _conditions(access))
    lines += _section(_("Allergies:"), _allergies(access))
    lines += _section(_("Current medications:"), _medications(access))
    lines += _section(_("Latest measurements:"), _observations(access))
    lines += _section(_("Latest reports:"), _reports(access))
    lines += _section(_("Care plan:"), _plan(access))
    return "\n".join(lines).strip()
