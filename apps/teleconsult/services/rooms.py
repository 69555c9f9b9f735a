"""Who may enter a consultation room, the waiting room, and the call's start and end.

Access is decided in one place, `resolve_member`, on every page load and every WebSocket
connect (and again when the signalling consumer is told that something changed):

- the **patient** of the consultation, from `TELECONSULT_EARLY_MINUTES` before the appointment
  to `TELECONSULT_LATE_MINUTES` after its planned end (an ad-hoc room: until it ends);
- **clinicians** taking part in the appointment (its active participants; for an ad-hoc room
  the clinician who opened it), as long as they still have access to the patient's record;
- **guests** holding a valid invitation bound to their browser session.

A staff room (no patient: a multidisciplinary meeting's video) admits only the active
clinicians listed in its `staff`, directly as clinicians, without record access (the meeting
decides who is there, not a patient's care team); no patient, no guest.

Nobody enters a cancelled or ended consultation. Everybody else gets a 404, audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES, Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core.realtime import send_event_on_commit
from apps.records.access import (
    Level,
    PatientAccess,
    check_patient_access,
    deny,
    get_patient_for_user,
)
from apps.records.models import Encounter
from apps.scheduling.models import ACTIVE_STATUSES, Appointment, Mode

from ..models import Attendance, Consultation, GuestInvite, Seat
from . import ConsultError

# The session key under which a redeemed guest invitation is remembered (see guests.py).
GUEST_SESSION_KEY = "teleconsult_guest"


def room_group(room: str) -> str:
    """The channel-layer group of everyone connected to a room."""
    return f"consult.{room}"


def member_group(room: str, key: str) -> str:
    """The channel-layer group of one person's connections to a room."""
    return f"consult.{room}.{key}"


@dataclass
class Member:
    """A person allowed into a room, and what they are there."""

    consultation: Consultation
    seat: str
    display_name: str
    user: User | None = None
    guest: GuestInvite | None = None
    access: PatientAccess | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        """A stable id for the person in this room (never a database key of the patient)."""
        if self.user is not None:
            return f"u{self.user.pk}"
        return f"g{self.guest.pk if self.guest is not None else ''}"

    @property
    def is_clinician(self) -> bool:
        return self.seat == Seat.CLINICIAN

    @property
    def is_patient(self) -> bool:
        return self.seat == Seat.PATIENT

    def audit_detail(self, **extra: Any) -> dict[str, Any]:
        detail: dict[str, Any] = {"what": "consultation", "seat": self.seat, **extra}
        if self.guest is not None:
            detail["guest"] = self.guest.pk
        if self.access is not None:
            detail["via"] = self.access.via
        return detail


def _window(consultation: Consultation) -> tuple[dt.datetime, dt.datetime] | None:
    """When the patient may be in the room (None: any time until it ends)."""
    appointment = consultation.appointment
    if appointment is None:
        return None
    return (
        appointment.starts_at - dt.timedelta(minutes=settings.TELECONSULT_EARLY_MINUTES),
        appointment.ends_at + dt.timedelta(minutes=settings.TELECONSULT_LATE_MINUTES),
    )


def room_is_usable(consultation: Consultation) -> bool:
    if consultation.is_closed:
        return False
    appointment = consultation.appointment
    return appointment is None or appointment.status in ACTIVE_STATUSES


def patient_may_enter_now(consultation: Consultation, now: dt.datetime | None = None) -> bool:
    window = _window(consultation)
    if window is None:
        return True
    moment = now or timezone.now()
    if consultation.status == Consultation.Status.LIVE:
        return moment >= window[0]  # a call in progress runs until a clinician ends it
    return window[0] <= moment <= window[1]


def _is_taking_part(user: User, consultation: Consultation) -> bool:
    appointment = consultation.appointment
    if appointment is None:
        return consultation.opened_by_id == user.pk
    return appointment.participants.filter(user=user, active=True).exists()


def resolve_member(
    consultation: Consultation,
    user: User | None,
    guest_id: Any = None,
    *,
    now: dt.datetime | None = None,
) -> Member | None:
    """The member `user` (or the session's guest) is in the room now, or None. No audit."""
    if not room_is_usable(consultation):
        return None
    if consultation.is_staff_room:
        return _staff_member(consultation, user)
    if user is not None and user.is_authenticated and user.is_active:
        if user.role == Role.PATIENT:
            if consultation.patient is None or consultation.patient.user_id != user.pk:
                return None
            if not patient_may_enter_now(consultation, now):
                return None
            access = check_patient_access(user, consultation.patient_id)
            return Member(consultation, Seat.PATIENT, user.get_full_name(), user, None, access)
        if user.role in CLINICAL_ROLES and _is_taking_part(user, consultation):
            access = check_patient_access(user, consultation.patient_id, need=Level.CLINICAL)
            if access is None:
                return None
            return Member(consultation, Seat.CLINICIAN, user.get_full_name(), user, None, access)
    if guest_id is not None and str(guest_id).isdigit():
        invite = GuestInvite.objects.filter(pk=int(guest_id), consultation=consultation).first()
        if invite is not None and invite.is_valid(now) and invite.used_at is not None:
            return Member(consultation, Seat.GUEST, invite.name, None, invite)
    return None


def _staff_member(consultation: Consultation, user: User | None) -> Member | None:
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if user.role not in CLINICAL_ROLES or not consultation.staff.filter(pk=user.pk).exists():
        return None
    return Member(consultation, Seat.CLINICIAN, user.get_full_name(), user)


def _consultation(room: Any) -> Consultation | None:
    if not isinstance(room, str) or not room or len(room) > 32:
        return None
    return (
        Consultation.objects.select_related(
            "patient", "appointment", "appointment__type", "opened_by"
        )
        .filter(room=room)
        .first()
    )


def get_room_for_user(
    user: User | None,
    room: Any,
    *,
    guest_id: Any = None,
    request: HttpRequest | None = None,
    action: str | None = Action.READ,
) -> Member:
    """The member the user (or guest) is in the room, audited; Http404 (audited) otherwise."""
    consultation = _consultation(room)
    member = resolve_member(consultation, user, guest_id) if consultation is not None else None
    if member is None:
        raise deny(
            user if user is not None else User(),
            request=request,
            what="consultation",
            object_type="teleconsult.consultation",
            object_id=str(room)[:40],
            patient_id=consultation.patient_id if consultation is not None else "",
        )
    if action is not None:
        audit(
            action,
            request=request,
            actor=user,
            obj=consultation,
            patient_id=member.consultation.patient_ref,
            detail=member.audit_detail(),
        )
    return member


def member_for_scope(room: str, scope: dict[str, Any]) -> Member | None:
    """The WebSocket counterpart of `get_room_for_user`: None (audited) when not allowed."""
    session = scope.get("session")
    guest_id = session.get(GUEST_SESSION_KEY) if session is not None else None
    user = scope.get("user")
    try:
        return get_room_for_user(
            user if user is not None and user.is_authenticated else None,
            room,
            guest_id=guest_id,
            action="connect",
        )
    except Http404:
        return None


def still_allowed(member: Member) -> bool:
    """Re-check a connected member (after a change in the room, a guest link's expiry…)."""
    consultation = (
        Consultation.objects.select_related("patient", "appointment", "opened_by")
        .filter(pk=member.consultation.pk)
        .first()
    )
    if consultation is None:
        return False
    again = resolve_member(consultation, member.user, member.guest.pk if member.guest else None)
    return again is not None and again.seat == member.seat


# ---------------------------------------------------------------------------------------------
# Rooms


def room_for_appointment(appointment: Appointment) -> Consultation:
    """The room of a video appointment, created on first use."""
    if appointment.mode != Mode.VIDEO:
        raise ConsultError(_("This appointment is not a video consultation."))
    consultation, _created = Consultation.objects.get_or_create(
        appointment=appointment,
        defaults={"patient_id": appointment.patient_id, "reason": appointment.reason},
    )
    return consultation


def do_open_adhoc_room(
    user: User, patient_id: Any, *, reason: str = "", request: HttpRequest | None = None
) -> Consultation:
    """An urgent room opened by a clinician of the patient's care team (no appointment).

    The patient is told at once (in-app, then by their usual channel) with the room's link.
    """
    # Checked before the transaction: a refusal's audit row must survive the Http404.
    if user.role not in CLINICAL_ROLES:
        raise deny(user, request=request, what="consultation", object_id=patient_id)
    access = get_patient_for_user(
        user, patient_id, request=request, need=Level.CLINICAL, what="consultation", action=None
    )
    with transaction.atomic():
        consultation = Consultation.objects.create(
            patient=access.patient, opened_by=user, urgent=True, reason=reason[:300]
        )
        audit(
            Action.CREATE,
            request=request,
            actor=user,
            obj=consultation,
            patient_id=str(access.patient.pk),
            detail=access.audit_detail(what="consultation", urgent=True),
        )
        _call_the_patient(consultation, user)
    return consultation


@transaction.atomic
def do_open_staff_room(
    user: User, staff_ids: Iterable[int], *, title: str = "", request: HttpRequest | None = None
) -> Consultation:
    """A room without a patient for `staff_ids` (a meeting's video), opened by `user`.

    The caller (apps.care) has decided who takes part; only clinicians are let in anyway.
    """
    if user.role not in CLINICAL_ROLES:
        raise ConsultError(_("Only clinicians open a staff room."))
    consultation = Consultation.objects.create(
        patient=None, opened_by=user, reason=" ".join(title.split())[:300]
    )
    consultation.staff.set(_clinicians({user.pk, *staff_ids}))
    audit(
        Action.CREATE,
        request=request,
        actor=user,
        obj=consultation,
        detail={"what": "consultation", "staff_room": True},
    )
    return consultation


def set_room_staff(consultation: Consultation, staff_ids: Iterable[int]) -> None:
    """Replace who may enter a staff room; connected sockets re-check their access."""
    if not consultation.is_staff_room:
        raise ConsultError(_("Only a staff room has a staff list."))
    wanted = _clinicians(set(staff_ids))
    current = set(consultation.staff.values_list("pk", flat=True))
    if wanted == current:
        return
    consultation.staff.set(wanted)
    room_changed(consultation)


def _clinicians(ids: set[int]) -> set[int]:
    return set(
        User.objects.filter(pk__in=ids, role__in=CLINICAL_ROLES, is_active=True).values_list(
            "pk", flat=True
        )
    )


@transaction.atomic
def do_close_staff_room(consultation: Consultation, user: User) -> None:
    """End a staff room (its meeting is over): every socket of the room closes."""
    locked = Consultation.objects.select_for_update().get(pk=consultation.pk)
    if not locked.is_staff_room or locked.is_closed:
        return
    locked.status, locked.ended_at, locked.ended_by = (
        Consultation.Status.ENDED,
        timezone.now(),
        user,
    )
    locked.save(update_fields=["status", "ended_at", "ended_by"])
    audit(
        Action.UPDATE,
        actor=user,
        obj=locked,
        detail={"what": "consultation", "staff_room": True, "ended": True},
    )
    room_closed(locked, "ended")


def _call_the_patient(consultation: Consultation, clinician: User) -> None:
    owner = consultation.patient.user if consultation.patient is not None else None
    if owner is None or not owner.is_active:
        return
    from apps.notifications.services import notify

    with translation.override(owner.preferred_language or settings.LANGUAGE_CODE):
        notify(
            owner,
            kind="appointment",
            title=_("%(name)s is calling you: join the video consultation")
            % {"name": clinician.get_full_name()},
            body=_("Open the link to enter the waiting room of the call."),
            link=reverse("teleconsult:room", args=[consultation.room]),
        )


# ---------------------------------------------------------------------------------------------
# Waiting room


def arrive(member: Member) -> Attendance:
    """Record that a member is in the room. Clinicians are admitted at once; others wait."""
    lookup: dict[str, Any] = (
        {"user": member.user} if member.user is not None else {"guest": member.guest}
    )
    attendance, created = Attendance.objects.get_or_create(
        consultation=member.consultation,
        **lookup,
        defaults={"seat": member.seat, "display_name": member.display_name[:150]},
    )
    changed: list[str] = []
    if not created and attendance.last_left_at is not None:
        attendance.last_left_at = None  # back in the room
        changed.append("last_left_at")
    if member.is_clinician and not is_admitted(attendance):
        attendance.admitted_at, attendance.admitted_by, attendance.denied_at = (
            timezone.now(),
            member.user,
            None,
        )
        changed += ["admitted_at", "admitted_by", "denied_at"]
    if changed:
        attendance.save(update_fields=changed)
    return attendance


def leave(member: Member) -> None:
    """The member's last socket closed (they may come back: `arrive` clears the mark)."""
    lookup: dict[str, Any] = (
        {"user": member.user} if member.user is not None else {"guest": member.guest}
    )
    Attendance.objects.filter(consultation=member.consultation, **lookup).update(
        last_left_at=timezone.now()
    )


def is_admitted(attendance: Attendance) -> bool:
    return attendance.admitted_at is not None and attendance.denied_at is None


@transaction.atomic
def do_admit(member: Member, key: str) -> Attendance:
    """A clinician lets a waiting person (`key` as in `Member.key`) into the call."""
    attendance = _waiting(member, key)
    attendance.admitted_at, attendance.admitted_by, attendance.denied_at = (
        timezone.now(),
        member.user,
        None,
    )
    attendance.save(update_fields=["admitted_at", "admitted_by", "denied_at"])
    audit(
        Action.UPDATE,
        actor=member.user,
        obj=member.consultation,
        patient_id=str(member.consultation.patient_id),
        detail=member.audit_detail(admitted=key),
    )
    return attendance


@transaction.atomic
def do_deny(member: Member, key: str) -> Attendance:
    """A clinician turns a waiting person away (they may knock again by reloading)."""
    attendance = _waiting(member, key)
    attendance.denied_at, attendance.admitted_at = timezone.now(), None
    attendance.save(update_fields=["denied_at", "admitted_at"])
    audit(
        Action.UPDATE,
        actor=member.user,
        obj=member.consultation,
        patient_id=str(member.consultation.patient_id),
        detail=member.audit_detail(denied=key),
    )
    return attendance


def attendance_key(attendance: Attendance) -> str:
    return f"u{attendance.user_id}" if attendance.user_id else f"g{attendance.guest_id}"


def _waiting(member: Member, key: str) -> Attendance:
    if not member.is_clinician:
        raise ConsultError(_("Only a clinician of the consultation may admit people."))
    if not isinstance(key, str) or len(key) < 2 or key[0] not in "ug" or not key[1:].isdigit():
        raise ConsultError(_("Nobody by that name is waiting."))
    field_name = "user_id" if key[0] == "u" else "guest_id"
    attendance = (
        Attendance.objects.select_for_update()
        .filter(consultation=member.consultation, **{field_name: int(key[1:])})
        .first()
    )
    if attendance is None:
        raise ConsultError(_("Nobody by that name is waiting."))
    if attendance.seat == Seat.CLINICIAN:
        raise ConsultError(_("Clinicians of the consultation need no admission."))
    return attendance


# ---------------------------------------------------------------------------------------------
# The call


@transaction.atomic
def call_connected(consultation: Consultation, clinician: User) -> Consultation:
    """Patient and clinician are both in the call: the real start, and the Encounter opens.

    Idempotent: only the first call sets the start.
    """
    consultation = Consultation.objects.select_for_update().get(pk=consultation.pk)
    if consultation.started_at is not None or consultation.is_closed:
        return consultation
    if consultation.patient_id is None:
        return consultation  # a staff room is no part of any record: no Encounter
    now = timezone.now()
    encounter = Encounter.objects.create(
        patient_id=consultation.patient_id,
        status=Encounter.Status.IN_PROGRESS,
        kind=Encounter.Kind.VIRTUAL,
        reason=(consultation.reason or "")[:200],
        practitioner=clinician,
        recorded_by=clinician,
        started_at=now,
    )
    consultation.started_at, consultation.status, consultation.encounter = (
        now,
        Consultation.Status.LIVE,
        encounter,
    )
    consultation.save(update_fields=["started_at", "status", "encounter"])
    appointment = consultation.appointment
    if appointment is not None and appointment.status == Appointment.Status.BOOKED:
        appointment.status = Appointment.Status.ARRIVED
        appointment.save(update_fields=["status"])
    audit(
        Action.CREATE,
        actor=clinician,
        obj=encounter,
        patient_id=str(consultation.patient_id),
        detail={"what": "consultation", "consultation": consultation.pk, "started": True},
    )
    return consultation


@transaction.atomic
def do_end_call(member: Member, *, request: HttpRequest | None = None) -> Consultation:
    """A clinician ends the consultation: the Encounter gets its real end; the room closes."""
    if not member.is_clinician:
        raise ConsultError(_("Only a clinician of the consultation may end it."))
    consultation = Consultation.objects.select_for_update().get(pk=member.consultation.pk)
    if consultation.is_closed:
        return consultation
    now = timezone.now()
    consultation.ended_at, consultation.ended_by = now, member.user
    consultation.status = Consultation.Status.ENDED
    if consultation.started_at is None:  # nobody but the clinician came: nothing to bill
        consultation.save(update_fields=["ended_at", "ended_by", "status"])
    else:
        consultation.save(update_fields=["ended_at", "ended_by", "status"])
        encounter = consultation.encounter
        if encounter is not None:
            encounter.ended_at, encounter.status = now, Encounter.Status.FINISHED
            encounter.save(update_fields=["ended_at", "status"])
        appointment = consultation.appointment
        if appointment is not None and appointment.status in (
            Appointment.Status.BOOKED,
            Appointment.Status.ARRIVED,
        ):
            appointment.status = Appointment.Status.FULFILLED
            appointment.save(update_fields=["status"])
    GuestInvite.objects.filter(consultation=consultation, revoked_at__isnull=True).update(
        revoked_at=now
    )
    audit(
        Action.UPDATE,
        request=request,
        actor=member.user,
        obj=consultation,
        patient_id=consultation.patient_ref,
        detail=member.audit_detail(ended=True),
    )
    from .recording import stop_running_recordings  # recording imports this module

    stop_running_recordings(consultation, member.user)
    room_closed(consultation, "ended")
    return consultation


def room_closed(consultation: Consultation, reason: str) -> None:
    """Tell every socket of the room (every web process) to close, after the commit."""
    send_event_on_commit(
        "consult.closed",
        {"room": consultation.room, "reason": reason},
        [room_group(consultation.room)],
    )


def room_changed(consultation: Consultation) -> None:
    """Tell the room's sockets to re-check their access (a guest revoked, a participant removed)."""
    send_event_on_commit(
        "consult.recheck", {"room": consultation.room}, [room_group(consultation.room)]
    )
