"""Medication reminders: the doses of the patient's active prescriptions, planned at their local
dose times, reminded (outside quiet hours), answered "taken"/"skipped" or counted as missed;
the answers make the adherence record.

The beat job (`run_reminders`, every minute) is idempotent and safe to run on two workers at
once: a dose is planned once (unique line + time, `bulk_create(ignore_conflicts=True)`), and
reminded once (rows are claimed with `SELECT … FOR UPDATE SKIP LOCKED` before being marked).

Which lines: every line of a signed prescription still active (status "active", not past
`valid_until`), not "as needed", whose current-medication entry was not ended (stopped in the
chart, or replaced by a dose change), from the signing day for `duration_days` days, for a patient
with an active portal account who did not turn reminders off and whose open care plans' pathways
do not turn them off. Dose times: `followup_time.dose_times` (1 a day → t0, 2 → t0 and t2,
3 → t0, t1, t2, 4 → all) of the patient's four dose times (else `CARE_DOSE_TIMES`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.notifications.services import notify
from apps.records.access import PatientAccess
from apps.records.models import MedicationRequest, MedicationStatement, Patient, Prescription

from ..models import CarePlan, CarePreferences, DoseReminder
from ..models.plans import OPEN_PLAN_STATUSES
from . import CareError
from .followup_db import insert_new
from .followup_time import (
    LocalRules,
    check_dose_times,
    dose_times,
    local_moment,
    out_of_quiet_hours,
    rules_for,
    zone_or_none,
)

logger = logging.getLogger(__name__)

BATCH = 500
# Patients whose due reminders one transaction sends.
PATIENT_BATCH = 100
PLAN_GRACE = dt.timedelta(minutes=30)
# A dose may be answered from this long before its time (taken a little early).
EARLY_ANSWER = dt.timedelta(hours=2)
REASON_MAX = 200
ANSWERED = (DoseReminder.Status.TAKEN, DoseReminder.Status.SKIPPED)
COUNTED = (DoseReminder.Status.TAKEN, DoseReminder.Status.SKIPPED, DoseReminder.Status.MISSED)
OPEN_DOSE = (DoseReminder.Status.PLANNED, DoseReminder.Status.SENT)


def dose_url(dose: DoseReminder) -> str:
    return reverse("care:dose", args=[dose.pk])


def preferences_of(patient_ids: Any) -> dict[int, CarePreferences]:
    return {p.patient_id: p for p in CarePreferences.objects.filter(patient_id__in=patient_ids)}


def rules_of_patient(patient: Patient) -> LocalRules:
    return rules_for(CarePreferences.objects.filter(patient=patient).first())


# ---------------------------------------------------------------------------------------------
# Planning


def reminder_lines() -> QuerySet[MedicationRequest]:
    """Prescription lines that get reminders (see the module docstring)."""
    paused = CarePlan.objects.filter(
        status__in=OPEN_PLAN_STATUSES, pathway__medication_reminders=False
    ).values("patient_id")
    # The line's entry in the current medications, ended (stopped, or replaced by a new line).
    ended = MedicationStatement.objects.filter(
        prescription_id=OuterRef("prescription_id"),
        medication_id=OuterRef("medication_id"),
        status__in=(MedicationStatement.Status.COMPLETED, MedicationStatement.Status.STOPPED),
    )
    return (
        MedicationRequest.objects.filter(
            prescription__status=Prescription.Status.ACTIVE,
            prescription__signed_at__isnull=False,
            as_needed=False,
            patient__active=True,
            patient__user__isnull=False,
            patient__user__is_active=True,
        )
        .exclude(patient__care_preferences__medication_reminders=False)
        .exclude(patient_id__in=paused)
        .exclude(Exists(ended))
    )


def line_period(line: MedicationRequest, zone: Any) -> tuple[dt.date, dt.date]:
    """The local days [first, last] of a line: from its signing day for `duration_days` days,
    not past the prescription's validity."""
    signed = line.prescription.signed_at
    assert signed is not None  # noqa: S101 - reminder_lines() keeps signed ones only
    first = signed.astimezone(zone).date()
    last = first + dt.timedelta(days=line.duration_days - 1)
    if line.prescription.valid_until is not None:
        last = min(last, line.prescription.valid_until)
    return first, last


def doses_of_line(
    line: MedicationRequest, rules: LocalRules, start: dt.datetime, end: dt.datetime
) -> list[DoseReminder]:
    """The (unsaved) doses of `line` whose time falls in [start, end]."""
    first, last = line_period(line, rules.zone)
    signed_at = line.prescription.signed_at
    walls = dose_times(rules.dose_times, line.frequency)
    day = max(first, start.astimezone(rules.zone).date() - dt.timedelta(days=1))
    stop = min(last, end.astimezone(rules.zone).date() + dt.timedelta(days=1))
    doses = []
    while day <= stop:
        for wall in walls:
            moment = local_moment(day, wall, rules.zone)
            # Not before the prescription was signed, nor outside the planning window.
            if signed_at is not None and moment < signed_at:
                continue
            if not start <= moment <= end:
                continue
            doses.append(
                DoseReminder(
                    patient_id=line.patient_id,
                    line=line,
                    scheduled_for=moment,
                    local_time=wall.strftime("%H:%M"),
                    send_at=out_of_quiet_hours(moment, rules),
                )
            )
        day += dt.timedelta(days=1)
    return doses


def prune_doses(now: dt.datetime) -> int:
    """Forget planned doses that should no longer be reminded (prescription stopped or renewed,
    reminders turned off): they were never sent and count for nothing."""
    deleted, _rows = (
        DoseReminder.objects.filter(status=DoseReminder.Status.PLANNED, send_at__gt=now)
        .exclude(line__in=reminder_lines().values("pk"))
        .delete()
    )
    return deleted


def plan_doses(now: dt.datetime | None = None, *, patient_ids: Iterable[int] | None = None) -> int:
    """Create the dose rows of the next CARE_DOSE_HORIZON_HOURS; how many were new."""
    now = now or timezone.now()
    end = now + dt.timedelta(hours=settings.CARE_DOSE_HORIZON_HOURS)
    prune_doses(now)
    # A dose whose time has just passed (first run, a worker restarted) is still reminded.
    start = now - PLAN_GRACE
    yesterday = (now - dt.timedelta(days=1)).date()
    lines = (
        reminder_lines()
        .filter(prescription__signed_at__lte=end)
        .filter(
            Q(prescription__valid_until__isnull=True) | Q(prescription__valid_until__gte=yesterday)
        )
    )
    if patient_ids is not None:
        lines = lines.filter(patient_id__in=list(patient_ids))
    prefs = preferences_of(lines.values("patient_id"))
    rules_cache: dict[int, LocalRules] = {}
    created = 0
    batch: list[DoseReminder] = []
    for line in lines.select_related("prescription").order_by("pk").iterator(chunk_size=BATCH):
        rules = rules_cache.get(line.patient_id)
        if rules is None:
            rules = rules_cache[line.patient_id] = rules_for(prefs.get(line.patient_id))
        first, last = line_period(line, rules.zone)
        if last < (now.astimezone(rules.zone).date() - dt.timedelta(days=1)):
            continue
        batch.extend(doses_of_line(line, rules, start, end))
        if len(batch) >= BATCH:
            created += _insert(batch)
            batch = []
    created += _insert(batch)
    return created


def _insert(doses: list[DoseReminder]) -> int:
    return insert_new(DoseReminder, doses, ("line", "scheduled_for"))


# ---------------------------------------------------------------------------------------------
# Sending


def _remind(user: User, doses: list[DoseReminder]) -> None:
    """One notification for the doses of one patient due at the same time (no drug name: the
    text may go by SMS)."""
    with translation.override(user.preferred_language or settings.LANGUAGE_CODE):
        title = _("It is time for your %(time)s medicine") % {"time": doses[0].local_time}
        body = _("Open the reminder to say whether you took it.")
    link = dose_url(doses[0]) if len(doses) == 1 else reverse("care:my_care")
    notify(user, "care.reminder", title, body, link, ref=f"care.dose:{doses[0].pk}")


def send_due_reminders(now: dt.datetime | None = None) -> int:
    """Remind the patients of the doses due now; each row is sent by exactly one run.

    Work is claimed per patient (a `FOR NO KEY UPDATE SKIP LOCKED` lock on the patient row,
    which does not block inserts referring to the patient): the doses one patient takes at the
    same time are grouped into one notification, so two runs must never share a patient.
    """
    now = now or timezone.now()
    # Older reminders are not sent any more: `mark_missed` counts them.
    oldest = now - dt.timedelta(hours=settings.CARE_DOSE_ANSWER_HOURS)
    due = DoseReminder.objects.filter(
        status=DoseReminder.Status.PLANNED, send_at__lte=now, send_at__gt=oldest
    )
    sent = 0
    while True:
        with transaction.atomic():
            patients = list(
                Patient.objects.select_for_update(no_key=True, skip_locked=True, of=("self",))
                .filter(pk__in=due.values("patient_id"))
                .order_by("pk")
                .values_list("pk", flat=True)[:PATIENT_BATCH]
            )
            if not patients:
                break
            claimed = list(
                due.filter(patient_id__in=patients)
                .select_related("patient__user")
                .order_by("send_at", "pk")
            )
            DoseReminder.objects.filter(
                pk__in=[d.pk for d in claimed], status=DoseReminder.Status.PLANNED
            ).update(status=DoseReminder.Status.SENT, sent_at=now)
            groups: dict[tuple[int, dt.datetime, str], list[DoseReminder]] = defaultdict(list)
            for dose in claimed:
                groups[(dose.patient_id, dose.send_at, dose.local_time)].append(dose)
            for doses in groups.values():
                user = doses[0].patient.user
                if user is not None and user.is_active:
                    _remind(user, doses)
            sent += len(claimed)
    return sent


def mark_missed(now: dt.datetime | None = None) -> int:
    """Doses without an answer CARE_DOSE_ANSWER_HOURS after their reminder time are missed."""
    now = now or timezone.now()
    limit = now - dt.timedelta(hours=settings.CARE_DOSE_ANSWER_HOURS)
    return DoseReminder.objects.filter(status__in=OPEN_DOSE, send_at__lte=limit).update(
        status=DoseReminder.Status.MISSED
    )


def run_reminders(now: dt.datetime | None = None) -> int:
    """The beat job: plan, count the missed, send what is due; how many rows changed."""
    now = now or timezone.now()
    planned = plan_doses(now)
    missed = mark_missed(now)
    sent = send_due_reminders(now)
    return planned + missed + sent


# ---------------------------------------------------------------------------------------------
# Answers


def is_answerable(dose: DoseReminder, now: dt.datetime | None = None) -> bool:
    now = now or timezone.now()
    return dose.status in OPEN_DOSE and dose.scheduled_for - EARLY_ANSWER <= now


def do_answer_dose(
    user: User,
    dose: DoseReminder,
    taken: bool,
    reason: str = "",
    *,
    request: HttpRequest | None = None,
    now: dt.datetime | None = None,
) -> DoseReminder:
    """The patient says they took (or skipped) a dose; once, audited."""
    now = now or timezone.now()
    patient_user_id = Patient.objects.filter(pk=dose.patient_id).values_list("user_id", flat=True)
    if not user.is_authenticated or patient_user_id.first() != user.pk:
        raise CareError(_("Only the patient answers their medication reminders."))
    reason = " ".join((reason or "").split())
    if len(reason) > REASON_MAX:
        raise CareError(_("The reason is too long (200 characters at most)."))
    if dose.scheduled_for - EARLY_ANSWER > now:
        raise CareError(_("This dose is not due yet."))
    status = DoseReminder.Status.TAKEN if taken else DoseReminder.Status.SKIPPED
    with transaction.atomic():
        changed = DoseReminder.objects.filter(pk=dose.pk, status__in=OPEN_DOSE).update(
            status=status, answered_at=now, skip_reason="" if taken else reason
        )
        if not changed:
            dose.refresh_from_db()
            if dose.status == DoseReminder.Status.MISSED:
                raise CareError(_("The time to answer this reminder has passed."))
            raise CareError(_("You already answered this reminder."))
        dose.refresh_from_db()
        audit(
            Action.UPDATE,
            request=request,
            actor=user,
            obj=dose,
            patient_id=str(dose.patient_id),
            detail={"what": "dose", "via": "self", "answer": status},
        )
    return dose


# ---------------------------------------------------------------------------------------------
# Adherence


@dataclass
class LineAdherence:
    line: MedicationRequest
    taken: int = 0
    skipped: int = 0
    missed: int = 0

    @property
    def counted(self) -> int:
        return self.taken + self.skipped + self.missed

    @property
    def rate(self) -> float | None:
        return self.taken / self.counted if self.counted else None

    @property
    def percent(self) -> int | None:
        return round(self.rate * 100) if self.rate is not None else None


@dataclass
class Adherence:
    days: int
    lines: list[LineAdherence] = field(default_factory=list)
    # One point per local day, oldest first: {"date": "YYYY-MM-DD", "taken", "counted",
    # "percent" (None when no dose was due)}.
    series: list[dict[str, Any]] = field(default_factory=list)

    @property
    def taken(self) -> int:
        return sum(line.taken for line in self.lines)

    @property
    def counted(self) -> int:
        return sum(line.counted for line in self.lines)

    @property
    def rate(self) -> float | None:
        return self.taken / self.counted if self.counted else None

    @property
    def percent(self) -> int | None:
        return round(self.rate * 100) if self.rate is not None else None


def adherence(
    patient: Patient,
    days: int = 30,
    *,
    sensitivities: Iterable[str] | None = None,
    now: dt.datetime | None = None,
    rules: LocalRules | None = None,
) -> Adherence:
    """Taken / (taken + skipped + missed) per line and overall over the last `days` local days,
    and the per-day series for a chart (three queries). `sensitivities` limits the lines to
    those a clinician may see."""
    now = now or timezone.now()
    rules = rules or rules_of_patient(patient)
    today = now.astimezone(rules.zone).date()
    first_day = today - dt.timedelta(days=days - 1)
    start = local_moment(first_day, dt.time(0, 0), rules.zone)
    rows = DoseReminder.objects.filter(
        patient=patient, scheduled_for__gte=start, scheduled_for__lte=now, status__in=COUNTED
    )
    if sensitivities is not None:
        rows = rows.filter(line__sensitivity__in=list(sensitivities))
    per_line: dict[int, dict[str, int]] = defaultdict(dict)
    for row in rows.values("line_id", "status").annotate(n=Count("pk")).order_by():
        per_line[row["line_id"]][row["status"]] = row["n"]
    lines = MedicationRequest.objects.filter(pk__in=per_line).select_related("medication")
    result = Adherence(days=days)
    for line in sorted(lines, key=lambda item: (item.medication.name, item.pk)):
        counts = per_line[line.pk]
        result.lines.append(
            LineAdherence(
                line=line,
                taken=counts.get(DoseReminder.Status.TAKEN, 0),
                skipped=counts.get(DoseReminder.Status.SKIPPED, 0),
                missed=counts.get(DoseReminder.Status.MISSED, 0),
            )
        )
    by_day: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    daily = (
        rows.annotate(day=TruncDate("scheduled_for", tzinfo=rules.zone))
        .values("day")
        .annotate(
            taken=Count("pk", filter=Q(status=DoseReminder.Status.TAKEN)),
            counted=Count("pk"),
        )
        .order_by()
    )
    for row in daily:
        by_day[row["day"]] = [row["taken"], row["counted"]]
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        taken, counted = by_day.get(day, [0, 0])
        result.series.append(
            {
                "date": day.isoformat(),
                "taken": taken,
                "counted": counted,
                "percent": round(100 * taken / counted) if counted else None,
            }
        )
    return result


# ---------------------------------------------------------------------------------------------
# Preferences


def do_save_preferences(
    access: PatientAccess,
    *,
    time_zone: str,
    dose_times: list[str],
    quiet_start: dt.time | None,
    quiet_end: dt.time | None,
    medication_reminders: bool,
    request: HttpRequest | None = None,
    now: dt.datetime | None = None,
) -> CarePreferences:
    """The patient's reminder choices; the coming doses are planned again at the new times."""
    if not access.is_patient_self:
        raise CareError(_("Only the patient sets their reminder preferences."))
    if zone_or_none(time_zone) is None:
        raise CareError(_("Choose a time zone from the list."))
    try:
        times = check_dose_times(list(dose_times))
    except ValueError:
        raise CareError(_("Give four dose times in the order of the day.")) from None
    if (quiet_start is None) != (quiet_end is None) or (
        quiet_start is not None and quiet_start == quiet_end
    ):
        raise CareError(_("Give both the start and the end of the quiet hours."))
    now = now or timezone.now()
    patient = access.patient
    with transaction.atomic():
        prefs, created = CarePreferences.objects.select_for_update().get_or_create(patient=patient)
        prefs.time_zone = time_zone
        prefs.dose_times = times
        prefs.quiet_start, prefs.quiet_end = quiet_start, quiet_end
        prefs.medication_reminders = medication_reminders
        prefs.save()
        # Doses not reminded yet follow the new times (or disappear when reminders are off).
        DoseReminder.objects.filter(
            patient=patient, status=DoseReminder.Status.PLANNED, scheduled_for__gt=now
        ).delete()
        audit(
            Action.CREATE if created else Action.UPDATE,
            request=request,
            actor=access.user,
            obj=prefs,
            patient_id=str(patient.pk),
            detail=access.audit_detail(
                what="reminder preferences", reminders=medication_reminders, time_zone=time_zone
            ),
        )
    plan_doses(now, patient_ids=[patient.pk])
    return prefs
