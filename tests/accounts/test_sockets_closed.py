"""Ending a session or an account closes its WebSockets."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async as sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client

from apps.accounts.models import User
from apps.accounts.services import do_deactivate_user
from tests.conftest import verified_client
from virtualhospital.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(client: Client) -> bytes:
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(cookie: bytes) -> tuple[WebsocketCommunicator, bool, Any]:
    communicator = WebsocketCommunicator(
        application,
        "/ws/notifications/",
        headers=[(b"cookie", cookie), (b"origin", b"http://127.0.0.1")],
    )
    connected, code = await communicator.connect(timeout=5)
    if not connected:
        # The browser answers the refusal: the consumer ends by itself instead of being
        # cancelled at event-loop teardown, which can hang inside the Redis channel layer.
        await communicator.disconnect()
    return communicator, connected, code


async def test_anonymous_sockets_are_refused() -> None:
    _communicator, connected, code = await connect(b"sessionid=nothing")

    assert not connected
    assert code == 4401


async def test_staff_sockets_need_the_second_factor(clinician: User) -> None:
    client = await sync_to_async(Client)()
    await sync_to_async(client.force_login)(
        clinician, backend="django.contrib.auth.backends.ModelBackend"
    )

    _communicator, connected, code = await connect(session_cookie(client))

    assert not connected
    assert code == 4401


async def test_deactivating_a_user_closes_their_sockets(clinician: User) -> None:
    client = await sync_to_async(verified_client)(clinician)
    communicator, connected, _code = await connect(session_cookie(client))
    assert connected

    await sync_to_async(do_deactivate_user)(clinician, by=None)

    event = await communicator.receive_json_from(timeout=5)
    assert event == {"type": "session.closed", "reason": "deactivated"}
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4408}
    # The browser answers the close: the consumer then leaves its groups and ends by itself
    # (cancelling it at loop teardown can hang inside the Redis channel layer).
    await communicator.disconnect()


async def test_logging_out_closes_the_sockets_of_that_session_only(patient: User) -> None:
    first = await sync_to_async(verified_client)(patient)
    second = await sync_to_async(verified_client)(patient)
    socket_one, ok_one, _ = await connect(session_cookie(first))
    socket_two, ok_two, _ = await connect(session_cookie(second))
    assert ok_one and ok_two

    await sync_to_async(first.post)("/accounts/logout/")

    assert (await socket_one.receive_json_from(timeout=5))["type"] == "session.closed"
    assert await socket_two.receive_nothing(timeout=0.5)
    await socket_one.disconnect()
    await socket_two.disconnect()
    key = first.cookies["sessionid"].value
    assert not await sync_to_async(SessionStore().exists)(key)
