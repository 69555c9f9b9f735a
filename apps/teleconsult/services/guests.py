"""Guest invitations: single-use links for an interpreter, a relative or another clinician.

The token appears once, in the link given to the clinician; only its SHA-256 is stored. The
first browser that opens the link binds it to its session (the SHA-256 of the session key is
kept), so a forwarded or leaked link is worthless once used. A link expires after
`TELECONSULT_GUEST_LINK_MINUTES`, never later than the end of the room's window, and at once
when revoked or when the call ends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action, Outcome
from apps.audit.services import record as audit

from ..models import Consultation, GuestInvite
from . import ConsultError
from .errors import NotAllowed
from .rooms import GUEST_SESSION_KEY, Member, _window, room_changed, room_is_usable

# secrets.token_urlsafe(32) gives 43 characters; anything much longer is not one of ours.
MAX_TOKEN_LENGTH = 64


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def link_expiry(consultation: Consultation, now: dt.datetime) -> dt.datetime:
    """When a link made now stops working: the configured lifetime, cut at the window's end."""
    expires = now + dt.timedelta(minutes=settings.TELECONSULT_GUEST_LINK_MINUTES)
    window = _window(consultation)
    if window is not None:
        expires = min(expires, window[1])
    return expires


@transaction.atomic
def do_invite(
    member: Member, name: str, relation: str, request: HttpRequest | None = None
) -> tuple[GuestInvite, str]:
    """A clinician invites a third party: the invitation and its token (shown only once)."""
    if not member.is_clinician or member.user is None:
        raise NotAllowed(_("Only a clinician of the consultation may invite a guest."))
    if member.consultation.is_staff_room:
        raise NotAllowed(_("A staff room takes no guests: add the person to the meeting."))
    name = " ".join((name or "").split())
    if not name:
        raise ConsultError(_("Give the guest's name."))
    if len(name) > 120:
        raise ConsultError(_("The guest's name is too long (at most 120 characters)."))
    if relation not in GuestInvite.Relation.values:
        raise ConsultError(_("Choose the guest's relation to the patient."))
    consultation = member.consultation
    now = timezone.now()
    expires_at = link_expiry(consultation, now)
    if expires_at <= now:
        raise ConsultError(_("The consultation's time is over: nobody can be invited any more."))
    token = secrets.token_urlsafe(32)
    invite = GuestInvite.objects.create(
        consultation=consultation,
        name=name,
        relation=relation,
        token_hash=_digest(token),
        created_by=member.user,
        created_at=now,
        expires_at=expires_at,
    )
    audit(
        Action.INVITED,
        request=request,
        actor=member.user,
        obj=invite,
        patient_id=str(consultation.patient_id),
        detail=member.audit_detail(what="guest-invite", relation=relation),
    )
    return invite, token


def _refused(request: HttpRequest, reason: str, invite: GuestInvite | None = None) -> None:
    audit(
        Action.DENIED,
        request=request,
        obj=invite,
        object_type="teleconsult.guestinvite",
        patient_id=str(invite.consultation.patient_id) if invite is not None else "",
        outcome=Outcome.DENIED,
        detail={"what": "guest-invite", "reason": reason},
    )


def _session_key(request: HttpRequest) -> str:
    session = request.session
    if not session.session_key:
        session.save()  # a first visit: the session needs its key now, to bind the link to it
    return str(session.session_key)


def peek(token: Any, request: HttpRequest) -> tuple[GuestInvite | None, bool]:
    """The invitation a link names, without using it up: (invite, already bound here).

    Link previews (messaging apps, mail scanners) fetch links with GET: only `redeem`, behind
    a button (POST), binds the link to a browser. None (audited) when it cannot be used here.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        _refused(request, "malformed")
        return None, False
    invite = (
        GuestInvite.objects.select_related("consultation__appointment")
        .filter(token_hash=_digest(token))
        .first()
    )
    if invite is None:
        _refused(request, "unknown")
        return None, False
    if not invite.is_valid() or not room_is_usable(invite.consultation):
        _refused(request, "expired", invite)
        return None, False
    if invite.used_at is None:
        return invite, False
    key = request.session.session_key
    if key and hmac.compare_digest(invite.session_key_hash, _digest(key)):
        return invite, True
    _refused(request, "used-elsewhere", invite)
    return None, False


def redeem(token: Any, request: HttpRequest) -> GuestInvite | None:
    """Open an invitation link in this browser; None (audited) when it may not be used here.

    The first session to open a link owns it; the same session may open it again.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        _refused(request, "malformed")
        return None
    with transaction.atomic():
        invite = (
            GuestInvite.objects.select_for_update(of=("self",))
            .select_related("consultation__appointment")
            .filter(token_hash=_digest(token))
            .first()
        )
        if invite is None:
            _refused(request, "unknown")
            return None
        if not invite.is_valid() or not room_is_usable(invite.consultation):
            _refused(request, "expired", invite)
            return None
        key_hash = _digest(_session_key(request))
        if invite.used_at is None:
            invite.used_at, invite.session_key_hash = timezone.now(), key_hash
            invite.save(update_fields=["used_at", "session_key_hash"])
        elif not hmac.compare_digest(invite.session_key_hash, key_hash):
            _refused(request, "used-elsewhere", invite)
            return None
        request.session[GUEST_SESSION_KEY] = invite.pk
        audit(
            Action.READ,
            request=request,
            obj=invite,
            patient_id=str(invite.consultation.patient_id),
            detail={"what": "guest-invite", "redeemed": True, "guest": invite.pk},
        )
    return invite


@transaction.atomic
def do_revoke(member: Member, invite_id: Any, request: HttpRequest | None = None) -> GuestInvite:
    """A clinician withdraws an invitation; a guest already in the room is disconnected."""
    if not member.is_clinician:
        raise NotAllowed(_("Only a clinician of the consultation may revoke an invitation."))
    invite = (
        GuestInvite.objects.select_for_update()
        .filter(pk=invite_id, consultation=member.consultation)
        .first()
        if str(invite_id).isdigit()
        else None
    )
    if invite is None:
        raise NotAllowed(_("There is no such invitation in this consultation."))
    if invite.revoked_at is None:
        invite.revoked_at = timezone.now()
        invite.save(update_fields=["revoked_at"])
        audit(
            Action.UPDATE,
            request=request,
            actor=member.user,
            obj=invite,
            patient_id=str(member.consultation.patient_id),
            detail=member.audit_detail(what="guest-invite", revoked=invite.pk),
        )
        room_changed(member.consultation)
    return invite


@transaction.atomic
def revoke_invites(invites: Iterable[GuestInvite], by: User, request: HttpRequest | None) -> int:
    """Revoke from the admin (no room membership): each revocation audited, rooms re-checked."""
    now, count = timezone.now(), 0
    for invite in invites:
        if invite.revoked_at is not None:
            continue
        GuestInvite.objects.filter(pk=invite.pk).update(revoked_at=now)
        audit(
            Action.UPDATE,
            request=request,
            actor=by,
            obj=invite,
            patient_id=str(invite.consultation.patient_id),
            detail={"what": "guest-invite", "revoked": invite.pk, "via": "admin"},
        )
        room_changed(invite.consultation)
        count += 1
    return count
