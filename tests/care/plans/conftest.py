"""The plans area's cast on top of tests/care/conftest.py: the reference pathways (loaded from
fixtures/care/pathways.json, with the questionnaires they name), signed-in clients reading in
English, and a listener of live events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings as django_settings
from django.test import Client
from django.utils import translation

from apps.accounts.models import User
from apps.audit.models import AuditEvent, Outcome
from apps.care.models import Pathway, Questionnaire
from apps.care.reference import load_pathways
from apps.core import realtime
from apps.core.realtime import user_group
from tests.conftest import verified_client


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Services' messages read in English (the tests match them), pages by their cookie."""
    with translation.override("en"):
        yield


QUESTION = {"link_id": "pain", "text": "Douleur (0 à 10)", "type": "integer", "min": 0, "max": 10}


@pytest.fixture
def questionnaires(db: None) -> dict[str, Questionnaire]:
    """The questionnaires the reference pathways name (the follow-up area owns their content)."""
    made = {}
    for code, purpose in (
        ("post-op-follow-up", Questionnaire.Purpose.FOLLOW_UP),
        ("heart-failure-symptoms", Questionnaire.Purpose.FOLLOW_UP),
        ("satisfaction-consultation", Questionnaire.Purpose.SATISFACTION),
    ):
        made[code], _created = Questionnaire.objects.get_or_create(
            code=code, defaults={"title": code, "purpose": purpose, "items": [QUESTION]}
        )
    return made


@pytest.fixture
def pathways(questionnaires: dict[str, Questionnaire]) -> dict[str, Pathway]:
    load_pathways()
    return {pathway.code: pathway for pathway in Pathway.objects.all()}


@pytest.fixture
def heart_failure(pathways: dict[str, Pathway]) -> Pathway:
    return pathways["heart-failure"]


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
                wait = timeout if len(events) < count else 0.2

        return async_to_sync(take)()
