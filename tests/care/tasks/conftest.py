"""The tasks area's cast on top of tests/care/conftest.py: a second nurse and a
physiotherapist on `record`'s care team, signed-in clients, and a listener of live events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.test import Client

from apps.accounts.models import Organization, Role, User
from apps.audit.models import AuditEvent, Outcome
from apps.core import realtime
from apps.core.realtime import user_group
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from tests.conftest import verified_client


@pytest.fixture
def nurse2(make_user: Callable[..., User], organization: Organization, record: Patient) -> User:
    user = make_user(Role.NURSE, email="nurse2@example.test", organization=organization)
    do_add_member(default_team(record), user)
    return user


@pytest.fixture
def physio(make_user: Callable[..., User], organization: Organization, record: Patient) -> User:
    user = make_user(
        Role.ALLIED,
        email="physio@example.test",
        organization=organization,
        profession="Physiothérapeute",
    )
    do_add_member(default_team(record), user)
    return user


def client_for(user: User) -> Client:
    """A signed-in client (second factor passed) reading the pages in English."""
    client = verified_client(user)
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def denials(user: User) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(actor_id=user.pk, outcome=Outcome.DENIED))


class Listener:
    """What a user's open pages would receive (their user group on the real channel layer)."""

    def __init__(self, user: User) -> None:
        self.layer = get_channel_layer()
        self.channel: str = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(user_group(user.pk), self.channel)

    def receive(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """The next `count` events (waiting up to `timeout` for them), then whatever else came."""
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


@pytest.fixture
def listen() -> Callable[[User], Listener]:
    return Listener
