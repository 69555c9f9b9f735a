"""Helpers the care tests share: signed-in clients, audited denials, a live-event listener."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent, Outcome
from apps.core import realtime
from apps.core.realtime import user_group
from tests.conftest import verified_client


def client_for(user: User, language: str = "en") -> Client:
    """A signed-in client (second factor passed) reading the pages in `language`."""
    client = verified_client(user)
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = language
    return client


def denials(user: User) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(actor_id=user.pk, outcome=Outcome.DENIED))


class Listener:
    """What a user's open pages receive (their user group on the real channel layer)."""

    def __init__(self, user: User) -> None:
        self.layer = get_channel_layer()
        self.channel: str = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(user_group(user.pk), self.channel)

    def receive(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The next `count` events (waiting up to `timeout`), then whatever else came quickly."""
        realtime.flush()

        async def take() -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = []
            wait = timeout
            while True:
                try:
                    message = await asyncio.wait_for(self.layer.receive(self.channel), wait)
                except TimeoutError:
                    return events
                if message["type"] == realtime.CONSUMER_BATCH_TYPE:
                    events.extend(message["events"])
                else:
                    events.append(message["event"])
                # Once the expected ones are in, only a short look for more.
                wait = timeout if len(events) < count else 0.2

        return async_to_sync(take)()
