"""Guest invitations: a single-use link that expires, bound to the first browser that opens it."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.sessions.backends.db import SessionStore
from django.http import HttpRequest
from django.test import RequestFactory
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.teleconsult.models import Consultation, GuestInvite
from apps.teleconsult.services import ConsultError
from apps.teleconsult.services.errors import NotAllowed
from apps.teleconsult.services.guests import do_invite, do_revoke, redeem, revoke_invites
from apps.teleconsult.services.rooms import GUEST_SESSION_KEY, resolve_member, room_group
from tests.teleconsult.records_cast import *  # noqa: F403
from tests.teleconsult.records_cast import end, member


def browser() -> HttpRequest:
    """A request from a browser with its own (new) session."""
    request = RequestFactory().get("/consult/join/x/")
    request.session = SessionStore()  # type: ignore[attr-defined]
    return request


def same_browser(request: HttpRequest) -> HttpRequest:
    again = RequestFactory().get("/consult/join/x/")
    again.session = SessionStore(request.session.session_key)  # type: ignore[attr-defined]
    return again


def test_an_invitation_stores_only_the_digest_of_its_token(
    room: Consultation, clinician: User
) -> None:
    # when the clinician invites an interpreter
    invite, token = do_invite(member(room, clinician), "  Ana   Interprète ", "interpreter")

    # then the token is long and random, and only its SHA-256 is kept
    assert len(token) >= 43
    assert invite.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(GuestInvite.objects.filter(pk=invite.pk).values().get())
    assert invite.name == "Ana Interprète"
    assert invite.used_at is None
    event = AuditEvent.objects.get(action=Action.INVITED, object_id=str(invite.pk))
    assert event.patient_id == str(room.patient_id)
    assert event.actor_id == clinician.pk


def test_a_link_expires_after_the_configured_time_but_never_after_the_room_window(
    room: Consultation, clinician: User, settings: Any
) -> None:
    settings.TELECONSULT_GUEST_LINK_MINUTES = 10
    settings.TELECONSULT_LATE_MINUTES = 60
    before = timezone.now()
    short, _token = do_invite(member(room, clinician), "Paul", "family")
    assert before + dt.timedelta(minutes=10) <= short.expires_at
    assert short.expires_at <= timezone.now() + dt.timedelta(minutes=10)

    # a longer lifetime is cut at the end of the patient's window
    settings.TELECONSULT_GUEST_LINK_MINUTES = 24 * 60
    long, _token = do_invite(member(room, clinician), "Paul", "family")
    assert room.appointment is not None
    assert long.expires_at == room.appointment.ends_at + dt.timedelta(minutes=60)


def test_only_clinicians_invite_and_the_input_is_checked(
    room: Consultation, clinician: User, patient: User
) -> None:
    with pytest.raises(NotAllowed):
        do_invite(member(room, patient), "Paul", "family")
    with pytest.raises(ConsultError, match="name"):
        do_invite(member(room, clinician), "   ", "family")
    with pytest.raises(ConsultError, match="too long"):
        do_invite(member(room, clinician), "x" * 121, "family")
    with pytest.raises(ConsultError, match="relation"):
        do_invite(member(room, clinician), "Paul", "boss")
    assert not GuestInvite.objects.exists()


def test_the_first_browser_owns_the_link_and_may_open_it_again(
    room: Consultation, clinician: User
) -> None:
    invite, token = do_invite(member(room, clinician), "Ana", "interpreter")
    first = browser()

    # when a browser opens the link
    assert redeem(token, first) == invite

    # then the link is bound to that session (by digest) and the guest is in the room
    invite.refresh_from_db()
    key = first.session.session_key
    assert invite.used_at is not None
    assert invite.session_key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert first.session[GUEST_SESSION_KEY] == invite.pk
    found = resolve_member(room, None, first.session[GUEST_SESSION_KEY])
    assert found is not None and found.seat == "guest"
    first.session.save()

    # the same browser may open it again
    assert redeem(token, same_browser(first)) == invite

    # and another browser, with the forwarded link, may not
    other = browser()
    assert redeem(token, other) is None
    assert GUEST_SESSION_KEY not in other.session
    denied = AuditEvent.objects.filter(action=Action.DENIED, object_id=str(invite.pk))
    assert denied.get().detail["reason"] == "used-elsewhere"
    assert (
        AuditEvent.objects.filter(
            action=Action.READ, object_type="teleconsult.guestinvite", object_id=str(invite.pk)
        ).count()
        == 2
    )


def test_an_expired_link_does_not_open(room: Consultation, clinician: User) -> None:
    invite, token = do_invite(member(room, clinician), "Ana", "interpreter")
    GuestInvite.objects.filter(pk=invite.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    request = browser()
    assert redeem(token, request) is None
    assert GUEST_SESSION_KEY not in request.session
    assert AuditEvent.objects.get(action=Action.DENIED).detail["reason"] == "expired"


def test_an_opened_link_stops_working_at_its_expiry(room: Consultation, clinician: User) -> None:
    invite, token = do_invite(member(room, clinician), "Ana", "interpreter")
    request = browser()
    assert redeem(token, request) is not None
    GuestInvite.objects.filter(pk=invite.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    assert resolve_member(room, None, invite.pk) is None
    assert redeem(token, same_browser(request)) is None


@pytest.mark.parametrize("token", ["", "nope", "x" * 500, None, 42])
def test_unknown_or_malformed_tokens_are_refused_and_audited(
    room: Consultation, token: Any
) -> None:
    assert redeem(token, browser()) is None
    assert AuditEvent.objects.filter(action=Action.DENIED).count() == 1


def test_a_revoked_link_is_dead_and_the_room_re_checks(
    room: Consultation, clinician: User, patient: User, django_capture_on_commit_callbacks: Any
) -> None:
    invite, token = do_invite(member(room, clinician), "Ana", "interpreter")
    request = browser()
    assert redeem(token, request) is not None
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(room_group(room.room), channel)

    # a patient may not revoke
    with pytest.raises(NotAllowed):
        do_revoke(member(room, patient), invite.pk)

    # when the clinician revokes it
    with django_capture_on_commit_callbacks(execute=True):
        do_revoke(member(room, clinician), invite.pk)

    # then the guest's sockets are told to re-check, and the guest is out
    message = async_to_sync(layer.receive)(channel)
    assert message["event"] == {"type": "consult.recheck", "room": room.room}
    assert resolve_member(room, None, invite.pk) is None
    assert redeem(token, same_browser(request)) is None
    invite.refresh_from_db()
    assert invite.revoked_at is not None
    assert AuditEvent.objects.filter(
        action=Action.UPDATE, object_id=str(invite.pk), detail__revoked=invite.pk
    ).exists()


def test_an_invitation_of_another_room_cannot_be_revoked_from_this_one(
    room: Consultation, other_room: Consultation, clinician: User, outsider: User
) -> None:
    theirs, _token = do_invite(member(other_room, outsider), "Ana", "interpreter")
    with pytest.raises(NotAllowed):
        do_revoke(member(room, clinician), theirs.pk)
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_links_die_with_the_call_and_none_can_be_made_after_it(
    room: Consultation, clinician: User
) -> None:
    invite, token = do_invite(member(room, clinician), "Ana", "interpreter")
    end(room, clinician)
    assert redeem(token, browser()) is None
    invite.refresh_from_db()
    assert invite.revoked_at is not None


def test_the_admin_revokes_invitations_audited(
    room: Consultation, clinician: User, admin_user: User
) -> None:
    invite, _token = do_invite(member(room, clinician), "Ana", "interpreter")
    assert revoke_invites(GuestInvite.objects.all(), admin_user, None) == 1
    assert revoke_invites(GuestInvite.objects.all(), admin_user, None) == 0
    invite.refresh_from_db()
    assert invite.revoked_at is not None
    event = AuditEvent.objects.get(
        action=Action.UPDATE, object_type="teleconsult.guestinvite", object_id=str(invite.pk)
    )
    assert event.actor_id == admin_user.pk
