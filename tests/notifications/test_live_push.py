"""A notification reaches the user's open WebSocket after commit, and never after a rollback."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction

from apps.accounts.models import User
from apps.core.realtime import EVENT_TYPES
from apps.notifications.services import notify
from tests.conftest import in_ci, verified_client
from virtualhospital.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


async def open_socket(user: User) -> WebsocketCommunicator:
    client = await database_sync_to_async(verified_client)(user)
    communicator = WebsocketCommunicator(
        application,
        "/ws/notifications/",
        headers=[
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
            (b"origin", b"http://127.0.0.1"),
        ],
    )
    connected, _code = await communicator.connect(timeout=5)
    assert connected
    return communicator


def test_ci_uses_the_redis_channel_layer(settings: Any) -> None:
    if in_ci():
        assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == (
            "channels_redis.core.RedisChannelLayer"
        )


async def test_the_notification_arrives_after_commit(patient: User) -> None:
    socket = await open_socket(patient)
    seen_before_commit: list[bool] = []

    @database_sync_to_async
    def create_in_a_transaction() -> int:
        from asgiref.sync import async_to_sync

        with transaction.atomic():
            notification = notify(patient, "announcement", "Nouveau document", link="/")
            # still inside the transaction: nothing may have been pushed yet
            seen_before_commit.append(not async_to_sync(socket.receive_nothing)(timeout=0.3))
        return notification.pk

    notification_id = await create_in_a_transaction()

    event = await socket.receive_json_from(timeout=5)
    assert seen_before_commit == [False]
    assert event["type"] == "notification.created"
    assert set(event) == {"type", *EVENT_TYPES["notification.created"]}
    assert event["id"] == notification_id
    assert event["unread_count"] == 1
    await socket.disconnect()


async def test_nothing_is_pushed_when_the_transaction_rolls_back(patient: User) -> None:
    socket = await open_socket(patient)

    @database_sync_to_async
    def create_then_fail() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            notify(patient, "announcement", "Rolled back")
            raise RuntimeError("boom")

    await create_then_fail()

    assert await socket.receive_nothing(timeout=1)
    await socket.disconnect()


async def test_a_user_only_receives_their_own_notifications(patient: User, patient2: User) -> None:
    socket = await open_socket(patient)

    await database_sync_to_async(notify)(patient2, "announcement", "For someone else")

    assert await socket.receive_nothing(timeout=1)
    await socket.disconnect()


async def test_reading_elsewhere_updates_the_count(patient: User) -> None:
    socket = await open_socket(patient)
    notification = await database_sync_to_async(notify)(patient, "announcement", "Hello")
    await socket.receive_json_from(timeout=5)

    client = await database_sync_to_async(verified_client)(patient)
    await database_sync_to_async(client.post)(f"/notifications/{notification.pk}/read/")

    event = await socket.receive_json_from(timeout=5)
    assert event == {"type": "notification.read", "unread_count": 0}
    await socket.disconnect()
