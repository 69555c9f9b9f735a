"""A clinician's agenda settings: weekly availability, exceptions, the types they offer.

Who may change them: the clinician themself, or a care coordinator of the same organisation
for any clinician of it. Everyone else gets 404 (audited). Every change is audited; the
clinician's Schedule is created on first use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from apps.accounts.models import Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import deny

from ..models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentType,
    AvailabilityException,
    AvailabilityRule,
    Location,
    Mode,
    Schedule,
)
from . import SchedulingError
from .slots import clinic_zone

# The professions that hold an agenda of their own.
AGENDA_ROLES = (Role.PHYSICIAN, Role.NURSE, Role.ALLIED)


def agenda_clinicians(user: User) -> Any:
    """Active clinicians with an agenda in `user`'s organisation (a queryset)."""
    if user.organization_id is None:
        return User.objects.none()
    return User.objects.filter(
        role__in=AGENDA_ROLES, is_active=True, organization_id=user.organization_id
    )


def may_manage(user: User, clinician: User) -> bool:
    if not user.is_active or clinician.role not in AGENDA_ROLES or not clinician.is_active:
        return False
    if user.pk == clinician.pk:
        return True
    return (
        user.role == Role.COORDINATOR
        and user.organization_id is not None
        and user.organization_id == clinician.organization_id
    )


def get_clinician_for_manager(
    user: User, clinician_id: Any, *, request: HttpRequest | None = None
) -> User:
    """The clinician whose agenda `user` may manage, or Http404 (audited)."""
    clinician = (
        User.objects.filter(pk=clinician_id).first() if str(clinician_id).isdigit() else None
    )
    if clinician is None or not may_manage(user, clinician):
        raise deny(
            user,
            request=request,
            what="availability",
            object_type="accounts.user",
            object_id=clinician_id,
        )
    return clinician


def schedule_of(clinician: User) -> Schedule:
    schedule, _created = Schedule.objects.get_or_create(clinician=clinician)
    return schedule


def _audit(
    action: str,
    by: User,
    obj: Any,
    clinician: User,
    request: HttpRequest | None,
    **detail: Any,
) -> None:
    audit(
        action,
        request=request,
        actor=by,
        obj=obj,
        detail={"what": "availability", "clinician": clinician.pk, **detail},
    )


def _check_rule(
    schedule: Schedule,
    weekday: int,
    starts: dt.time,
    ends: dt.time,
    mode: str,
    location: Location | None,
    valid_from: dt.date,
    valid_until: dt.date | None,
) -> None:
    if weekday not in range(7):
        raise SchedulingError(_("Choose a day of the week."))
    if ends <= starts:
        raise SchedulingError(_("The end must come after the start."))
    if mode not in Mode.values:
        raise SchedulingError(_("Choose video or in person."))
    if mode == Mode.IN_PERSON and location is None:
        raise SchedulingError(_("Choose the place of in-person appointments."))
    if location is not None and location.organization_id != schedule.clinician.organization_id:
        raise SchedulingError(_("This place belongs to another organisation."))
    if valid_until is not None and valid_until < valid_from:
        raise SchedulingError(_("The rule must end after it begins to apply."))
    periods = Q(valid_until__isnull=True) | Q(valid_until__gte=valid_from)
    if valid_until is not None:
        periods &= Q(valid_from__lte=valid_until)
    clash = (
        AvailabilityRule.objects.filter(
            periods, schedule=schedule, weekday=weekday, mode=mode, starts__lt=ends, ends__gt=starts
        )
        .order_by("starts")
        .first()
    )
    if clash is not None:
        raise SchedulingError(
            _("It overlaps the availability %(rule)s (%(mode)s).")
            % {"rule": str(clash), "mode": clash.get_mode_display()}
        )


@transaction.atomic
def do_add_rule(
    by: User,
    clinician: User,
    *,
    weekday: int,
    starts: dt.time,
    ends: dt.time,
    mode: str,
    location: Location | None = None,
    valid_from: dt.date | None = None,
    valid_until: dt.date | None = None,
    request: HttpRequest | None = None,
) -> AvailabilityRule:
    """Add a weekly window; refuses overlaps with a rule of the same day and mode."""
    schedule = schedule_of(clinician)
    # One change at a time per agenda, so two overlapping rules cannot both pass the check.
    Schedule.objects.select_for_update().filter(pk=schedule.pk).first()
    if mode == Mode.VIDEO:
        location = None
    valid_from = valid_from or dt.datetime.now(clinic_zone()).date()
    _check_rule(schedule, weekday, starts, ends, mode, location, valid_from, valid_until)
    rule = AvailabilityRule.objects.create(
        schedule=schedule,
        weekday=weekday,
        starts=starts,
        ends=ends,
        mode=mode,
        location=location,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    _audit(Action.CREATE, by, rule, clinician, request, rule=str(rule), mode=mode)
    return rule


@transaction.atomic
def do_remove_rule(
    by: User, clinician: User, rule_id: Any, *, request: HttpRequest | None = None
) -> None:
    rule = (
        AvailabilityRule.objects.filter(pk=rule_id, schedule__clinician=clinician).first()
        if str(rule_id).isdigit()
        else None
    )
    if rule is None:
        raise SchedulingError(_("This availability no longer exists."))
    _audit(Action.DELETE, by, rule, clinician, request, rule=str(rule), mode=rule.mode)
    rule.delete()


def booked_between(clinician: User, starts_at: dt.datetime, ends_at: dt.datetime) -> list[Any]:
    """Active appointments of the clinician overlapping [starts_at, ends_at)."""
    return list(
        Appointment.objects.filter(
            participants__user=clinician,
            status__in=ACTIVE_STATUSES,
            starts_at__lt=ends_at,
            ends_at__gt=starts_at,
        )
        .select_related("type")
        .distinct()
        .order_by("starts_at")
    )


@transaction.atomic
def do_add_exception(
    by: User,
    clinician: User,
    *,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    kind: str = AvailabilityException.Kind.ABSENCE,
    reason: str = "",
    request: HttpRequest | None = None,
) -> tuple[AvailabilityException, list[Appointment]]:
    """Block time off; returns the appointments already booked then (left as they are)."""
    if ends_at <= starts_at:
        raise SchedulingError(_("The end must come after the start."))
    if kind not in AvailabilityException.Kind.values:
        raise SchedulingError(_("Choose the kind of unavailability."))
    schedule = schedule_of(clinician)
    exception = AvailabilityException.objects.create(
        schedule=schedule, starts_at=starts_at, ends_at=ends_at, kind=kind, reason=reason[:200]
    )
    conflicts = booked_between(clinician, starts_at, ends_at)
    _audit(
        Action.CREATE,
        by,
        exception,
        clinician,
        request,
        kind=kind,
        starts_at=starts_at.isoformat(),
        ends_at=ends_at.isoformat(),
        booked=[a.pk for a in conflicts],
    )
    return exception, conflicts


@transaction.atomic
def do_remove_exception(
    by: User, clinician: User, exception_id: Any, *, request: HttpRequest | None = None
) -> None:
    exception = (
        AvailabilityException.objects.filter(pk=exception_id, schedule__clinician=clinician).first()
        if str(exception_id).isdigit()
        else None
    )
    if exception is None:
        raise SchedulingError(_("This unavailability no longer exists."))
    _audit(
        Action.DELETE,
        by,
        exception,
        clinician,
        request,
        kind=exception.kind,
        starts_at=exception.starts_at.isoformat(),
    )
    exception.delete()


@transaction.atomic
def do_set_types(
    by: User,
    clinician: User,
    types: Iterable[AppointmentType],
    *,
    specialty: str = "",
    specialty_code: str = "",
    request: HttpRequest | None = None,
) -> Schedule:
    """Set the appointment types the clinician offers (their profession must deliver each)."""
    types = list(types)
    for appointment_type in types:
        if appointment_type.professions and clinician.role not in appointment_type.professions:
            raise SchedulingError(
                _("%(role)s cannot deliver %(type)s.")
                % {"role": clinician.role_label, "type": appointment_type.label}
            )
    schedule = schedule_of(clinician)
    schedule.specialty = specialty[:120]
    schedule.specialty_code = specialty_code[:20]
    schedule.save(update_fields=["specialty", "specialty_code"])
    schedule.appointment_types.set(types)
    _audit(
        Action.UPDATE,
        by,
        schedule,
        clinician,
        request,
        types=sorted(t.code for t in types),
        specialty=schedule.specialty,
    )
    return schedule


def describe(appointment: Appointment) -> str:
    """ "<date time> <type>" in the clinic's zone, for warnings."""
    local = appointment.starts_at.astimezone(clinic_zone())
    return f"{date_format(local, 'SHORT_DATETIME_FORMAT')} {appointment.type.label}"
