"""Live delivery through the real channel layer (Redis, as between web processes): a message
posted by the clinician reaches the patient's open sockets after the commit, never before, and
never anybody who may not see it."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async as db
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core import realtime
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Message, Thread, Topic
from apps.messaging.services.threads import do_mark_read, do_post_message

from .test_consumer import _always_open, collect, open_inbox, open_thread  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)


def test_live_delivery_is_tested_through_redis() -> None:
    layer = get_channel_layer()
    assert type(layer).__module__.startswith("channels_redis"), "set REDIS_URL (make test does)"


@pytest.fixture
def thread(make_thread: Callable[..., Thread]) -> Thread:
    return make_thread()


async def test_the_clinicians_answer_reaches_the_patient_after_commit(
    thread: Thread, patient: User, clinician: User, outsider: User
) -> None:
    page = await open_thread(patient, thread)  # the conversation's page
    inbox = await open_inbox(patient)  # any other page of the patient (navigation badge)
    stranger = await open_inbox(outsider)
    before_commit: list[bool] = []

    @db
    def answer_in_a_transaction() -> int:
        with transaction.atomic():
            message = do_post_message(ThreadAccess(thread, clinician), body="Oui, le soir.")
            realtime.flush()  # anything handed over would be on its way now
            before_commit.append(async_to_sync(page.receive_nothing)(timeout=0.3))
            before_commit.append(async_to_sync(inbox.receive_nothing)(timeout=0.1))
        realtime.flush()
        return message.pk

    message_id = await answer_in_a_transaction()

    assert before_commit == [True, True]
    on_page = await collect(page, ["messaging.message", "messaging.thread", "messaging.unread"])
    new = on_page["messaging.message"]
    assert (new["thread"], new["message"], new["author_id"]) == (
        thread.pk,
        message_id,
        clinician.pk,
    )
    on_inbox = await collect(inbox, ["messaging.thread", "messaging.unread"])
    assert on_inbox["messaging.thread"]["thread"] == thread.pk
    assert on_inbox["messaging.thread"]["url"] == f"/messages/{thread.pk}/"
    assert on_inbox["messaging.unread"] == {"type": "messaging.unread", "threads": 1}
    # the thread's message goes to the thread's pages only, and the outsider hears nothing
    assert await inbox.receive_nothing(timeout=0.5)
    assert await stranger.receive_nothing(timeout=0.1)
    for socket in (page, inbox, stranger):
        await socket.disconnect()


async def test_nothing_reaches_anyone_when_the_post_rolls_back(
    thread: Thread, patient: User, clinician: User
) -> None:
    page = await open_thread(patient, thread)

    @db
    def answer_then_fail() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            do_post_message(ThreadAccess(thread, clinician), body="Annulé.")
            raise RuntimeError("boom")
        realtime.flush()

    await answer_then_fail()

    assert await page.receive_nothing(timeout=1)
    assert await db(Message.objects.filter(body="Annulé.").exists)() is False
    await page.disconnect()


async def test_the_patients_message_and_read_receipt_reach_the_clinicians_page(
    thread: Thread, patient: User, clinician: User, colleague: User
) -> None:
    page = await open_thread(clinician, thread)
    colleague_inbox = await open_inbox(colleague)

    message = await db(do_post_message)(ThreadAccess(thread, patient), body="Merci !")
    await db(realtime.flush)()

    events = await collect(page, ["messaging.message", "messaging.thread", "messaging.unread"])
    assert events["messaging.message"]["message"] == message.pk
    assert events["messaging.thread"]["url"] == f"/clinic/messages/{thread.pk}/"
    assert (await collect(colleague_inbox, ["messaging.thread"]))["messaging.thread"][
        "thread"
    ] == thread.pk

    await db(do_mark_read)(ThreadAccess(thread, patient))
    await db(realtime.flush)()

    receipt = (await collect(page, ["messaging.read"]))["messaging.read"]
    assert (receipt["reader_id"], receipt["side"]) == (patient.pk, "patient")
    await page.disconnect()
    await colleague_inbox.disconnect()


async def test_a_staff_discussion_never_reaches_the_patient(
    make_thread: Callable[..., Thread], patient: User, clinician: User, colleague: User
) -> None:
    inbox = await open_inbox(patient)
    colleague_inbox = await open_inbox(colleague)

    staff = await db(make_thread)(
        clinician, topic=Topic.HANDOVER, subject="Relève", body="Pansement à refaire ce soir."
    )
    await db(realtime.flush)()

    events = await collect(colleague_inbox, ["messaging.thread", "messaging.unread"])
    assert events["messaging.thread"]["thread"] == staff.pk
    assert await inbox.receive_nothing(timeout=0.5)
    await inbox.disconnect()
    await colleague_inbox.disconnect()


async def test_an_automatic_reply_reaches_the_patients_page_too(
    thread: Thread, patient: User, clinician: User, settings: Any
) -> None:
    await db(do_post_message)(ThreadAccess(thread, clinician), body="Oui, le soir.")
    page = await open_thread(patient, thread)
    settings.MESSAGING_OPENING_HOURS = closed_today_and_tomorrow()

    mine = await db(do_post_message)(ThreadAccess(thread, patient), body="Et le week-end ?")
    await db(realtime.flush)()

    authors: dict[int, int | None] = {}
    deadline = asyncio.get_running_loop().time() + 5
    while len(authors) < 2 and asyncio.get_running_loop().time() < deadline:
        event = (await collect(page, ["messaging.message"]))["messaging.message"]
        authors[event["message"]] = event["author_id"]
    reply = await db(Message.objects.get)(thread=thread, automatic=True)
    assert authors == {mine.pk: patient.pk, reply.pk: None}
    await page.disconnect()


def closed_today_and_tomorrow() -> tuple[frozenset[int], dt.time, dt.time]:
    """Opening hours with only the day after tomorrow open, whatever day the test runs."""
    after_tomorrow = (timezone.localdate() + dt.timedelta(days=2)).isoweekday()
    return frozenset({after_tomorrow}), dt.time(8), dt.time(18)
