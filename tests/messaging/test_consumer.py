"""The conversation socket `/ws/messages/<thread>/`: who may follow a thread live, and what it
relays (new messages and read receipts of its thread, and the user's own events)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from channels.db import database_sync_to_async as db
from channels.testing import WebsocketCommunicator

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.core import presence
from apps.core.realtime import EVENT_TYPES
from apps.messaging.access import ThreadAccess
from apps.messaging.consumers import CLOSE_NOT_ALLOWED
from apps.messaging.models import Thread, Topic
from apps.messaging.services.threads import do_mark_read, do_post_message
from tests.conftest import signed_in_client, verified_client
from virtualhospital.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _always_open(settings: Any) -> None:
    """No automatic replies here: the team reads messages around the clock."""
    settings.MESSAGING_OPENING_HOURS = (
        frozenset(range(1, 8)),
        dt.time(0, 0),
        dt.time(23, 59, 59, 999999),
    )


# ---------------------------------------------------------------------------------------------
# Sockets (also used by test_live_delivery.py)


async def cookie_for(user: User, *, verified: bool = True) -> str:
    client = await db(verified_client if verified else signed_in_client)(user)
    return f"sessionid={client.cookies['sessionid'].value}"


async def attempt(path: str, cookie: str) -> tuple[WebsocketCommunicator, bool, Any]:
    communicator = WebsocketCommunicator(
        application,
        path,
        headers=[(b"cookie", cookie.encode()), (b"origin", b"http://127.0.0.1")],
    )
    connected, code = await communicator.connect(timeout=10)
    if not connected:
        # The browser answers the refusal: the consumer ends by itself instead of being
        # cancelled at event-loop teardown, which can hang inside the Redis channel layer.
        await communicator.disconnect()
    return communicator, connected, code


async def open_thread(user: User, thread: Thread) -> WebsocketCommunicator:
    communicator, connected, code = await attempt(
        f"/ws/messages/{thread.pk}/", await cookie_for(user)
    )
    assert connected, f"refused with {code}"
    return communicator


async def open_inbox(user: User) -> WebsocketCommunicator:
    """The socket every page opens (`/ws/notifications/`): the user's own events."""
    communicator, connected, code = await attempt("/ws/notifications/", await cookie_for(user))
    assert connected, f"refused with {code}"
    return communicator


async def collect(
    socket: WebsocketCommunicator, wanted: Iterable[str], timeout: float = 5
) -> dict[str, dict[str, Any]]:
    """Reads until an event of each wanted type came (the last of each type is kept)."""
    missing = set(wanted)
    seen: dict[str, dict[str, Any]] = {}
    deadline = asyncio.get_running_loop().time() + timeout
    while missing:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"still waiting for {sorted(missing)}; got {sorted(seen)}"
        output = await socket.receive_output(timeout=left)
        assert output["type"] == "websocket.send", f"closed ({output.get('code')})"
        event = json.loads(output["text"])
        assert set(event) == {"type", *EVENT_TYPES[event["type"]]}, event
        seen[event["type"]] = event
        missing.discard(event["type"])
    return seen


async def denials(user: User) -> list[AuditEvent]:
    return await db(
        lambda: list(
            AuditEvent.objects.filter(actor_id=user.pk, action=Action.DENIED).order_by("seq")
        )
    )()


@pytest.fixture
def thread(make_thread: Callable[..., Thread]) -> Thread:
    return make_thread()


@pytest.fixture
def staff_thread(make_thread: Callable[..., Thread], clinician: User) -> Thread:
    return make_thread(
        clinician, topic=Topic.CASE, subject="Plaie qui ne guérit pas", body="Avis ?"
    )


# ---------------------------------------------------------------------------------------------
# Who may connect


async def test_the_patient_follows_their_thread_and_is_present(
    thread: Thread, patient: User
) -> None:
    socket = await open_thread(patient, thread)

    assert await db(presence.online)([patient.pk]) == {patient.pk}
    assert await denials(patient) == []
    await socket.disconnect()
    assert await db(presence.online)([patient.pk]) == set()


async def test_a_clinician_of_the_care_team_follows_a_staff_only_thread(
    staff_thread: Thread, clinician: User, colleague: User
) -> None:
    socket = await open_thread(colleague, staff_thread)

    await db(do_post_message)(ThreadAccess(staff_thread, clinician), body="Photo demain.")

    events = await collect(socket, ["messaging.message"])
    assert events["messaging.message"]["thread"] == staff_thread.pk
    assert events["messaging.message"]["author_id"] == clinician.pk
    await socket.disconnect()


async def test_an_outsider_clinician_is_refused_and_the_refusal_is_audited(
    thread: Thread, outsider: User
) -> None:
    _socket, connected, code = await attempt(
        f"/ws/messages/{thread.pk}/", await cookie_for(outsider)
    )

    assert not connected
    assert code == CLOSE_NOT_ALLOWED
    [denied] = await denials(outsider)
    assert (denied.object_type, denied.object_id) == ("messaging.thread", str(thread.pk))
    assert denied.patient_id == str(thread.patient_id)
    assert await db(presence.online)([outsider.pk]) == set()


async def test_the_patient_is_refused_a_staff_only_thread_about_them(
    staff_thread: Thread, patient: User
) -> None:
    _socket, connected, code = await attempt(
        f"/ws/messages/{staff_thread.pk}/", await cookie_for(patient)
    )

    assert not connected
    assert code == CLOSE_NOT_ALLOWED
    [denied] = await denials(patient)
    assert denied.object_id == str(staff_thread.pk)


@pytest.fixture(params=["patient2", "billing_user", "admin_user"])
def somebody_else(request: pytest.FixtureRequest) -> User:
    user: User = request.getfixturevalue(request.param)
    return user


async def test_other_people_are_refused(thread: Thread, somebody_else: User) -> None:
    user = somebody_else

    _socket, connected, code = await attempt(f"/ws/messages/{thread.pk}/", await cookie_for(user))

    assert not connected
    assert code == CLOSE_NOT_ALLOWED
    assert len(await denials(user)) == 1


async def test_an_unknown_thread_is_refused_like_a_forbidden_one(
    thread: Thread, clinician: User
) -> None:
    _socket, connected, code = await attempt(
        f"/ws/messages/{thread.pk + 1000}/", await cookie_for(clinician)
    )

    assert not connected
    assert code == CLOSE_NOT_ALLOWED
    [denied] = await denials(clinician)
    assert (denied.object_id, denied.patient_id) == (str(thread.pk + 1000), "")


async def test_anonymous_sockets_are_refused(thread: Thread) -> None:
    _socket, connected, code = await attempt(f"/ws/messages/{thread.pk}/", "sessionid=nothing")

    assert not connected
    assert code == 4401
    assert await db(AuditEvent.objects.filter(action=Action.DENIED).count)() == 0


async def test_staff_without_their_second_factor_are_refused_before_any_access_check(
    thread: Thread, clinician: User
) -> None:
    _socket, connected, code = await attempt(
        f"/ws/messages/{thread.pk}/", await cookie_for(clinician, verified=False)
    )

    assert not connected
    assert code == 4401
    assert await denials(clinician) == []


# ---------------------------------------------------------------------------------------------
# What it relays


async def test_read_receipts_of_the_thread_reach_the_other_side(
    thread: Thread, patient: User, clinician: User
) -> None:
    socket = await open_thread(patient, thread)

    await db(do_mark_read)(ThreadAccess(thread, clinician))

    receipt = (await collect(socket, ["messaging.read"]))["messaging.read"]
    assert (receipt["thread"], receipt["reader_id"], receipt["side"]) == (
        thread.pk,
        clinician.pk,
        "team",
    )
    await socket.disconnect()


async def test_a_socket_hears_only_its_own_thread(
    make_thread: Callable[..., Thread], thread: Thread, patient: User, clinician: User
) -> None:
    other = await db(make_thread)(subject="Autre question", body="Et le matin ?")
    socket = await open_thread(patient, thread)

    await db(do_post_message)(ThreadAccess(other, clinician), body="Le matin aussi.")

    # the patient's own events (the other thread changed) arrive; the other thread's message not
    events = await collect(socket, ["messaging.thread", "messaging.unread"])
    assert events["messaging.thread"]["thread"] == other.pk
    assert await socket.receive_nothing(timeout=0.5)
    await socket.disconnect()


async def test_the_heartbeat_is_the_only_message_the_socket_listens_to(
    thread: Thread, patient: User
) -> None:
    socket = await open_thread(patient, thread)

    await socket.send_json_to({"type": "ping"})
    await socket.send_json_to({"type": "messaging.message", "thread": thread.pk, "message": 1})

    assert await socket.receive_nothing(timeout=0.5)  # nothing echoed, still open
    assert await db(presence.online)([patient.pk]) == {patient.pk}
    await socket.disconnect()
