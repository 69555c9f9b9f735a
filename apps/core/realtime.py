"""The one way to push live events to browsers: after the transaction commits, over Channels.

Event types and the keys of their payloads are declared here, so producers and the
JavaScript that consumes them agree on one shape (tests check each type).
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import logging
import threading
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

EVENT_TYPES: dict[str, frozenset[str]] = {
    # A new in-app notification for the user.
    "notification.created": frozenset(
        {"id", "kind", "title", "body", "link", "created_at", "unread_count"}
    ),
    # The user's unread count changed (read elsewhere, in another tab or device).
    "notification.read": frozenset({"unread_count"}),
    # The session or account ended: sockets must close (logout, idle timeout, deactivation).
    "session.closed": frozenset({"reason"}),
    # Remote monitoring: new readings of a patient (one event per patient per stored batch);
    # each reading is {"code", "value", "unit", "at", "status"}.
    "monitoring.reading": frozenset({"patient", "readings"}),
    # A remote-monitoring alert was raised or changed state (acknowledged, escalated, resolved).
    "monitoring.alert": frozenset(
        {
            "id",
            "patient",
            "patient_name",
            "code",
            "severity",
            "state",
            "summary",
            "value",
            "unit",
            "measured_at",
            "opened_at",
            "handled_by",
            "url",
        }
    ),
    # Video consultations (apps/teleconsult), sent to a room's group `consult.<room>`:
    # the room closed (call ended, appointment cancelled): every socket of it closes.
    "consult.closed": frozenset({"room", "reason"}),
    # Something about who may be in the room changed: each socket re-checks its access.
    "consult.recheck": frozenset({"room"}),
    # A chat line; `file` is null or {"name", "size", "url"}.
    "consult.chat": frozenset({"room", "id", "author", "seat", "sent_at", "text", "file"}),
    # Recording consents and state: `consents` maps seat → bool; `recording` is null or an id.
    "consult.recording": frozenset({"room", "consents", "recording", "allowed"}),
    # To the clinicians of a consultation (their user groups): who is waiting to be admitted.
    "consult.waiting": frozenset({"room", "patient_name", "waiting", "url"}),
    # Secure messaging (apps/messaging). To a thread's open pages (group `thread.<pk>`): a new
    # message (pages fetch its rendered fragment; `author_id` is null for an automatic reply)…
    "messaging.message": frozenset({"thread", "message", "author_id", "sent_at"}),
    # …and a read receipt (`side` is "patient" or "team").
    "messaging.read": frozenset({"thread", "reader_id", "side", "read_at"}),
    # To everyone who can see the thread (user groups): it changed (inboxes fetch its row).
    "messaging.thread": frozenset(
        {"thread", "state", "urgency", "assignee_id", "last_message_at", "url"}
    ),
    # To one user: how many conversations they have unread (the navigation badge).
    "messaging.unread": frozenset({"threads"}),
    # Care coordination (apps/care), to the user groups of the patient's care team:
    # a task was created or changed (task lists update their row, the badge its count).
    "care.task": frozenset(
        {"id", "patient", "status", "priority", "assignee_id", "due_at", "overdue", "url"}
    ),
    # A care plan changed (activities, goals, status): open plan pages refresh.
    "care.plan": frozenset({"plan", "patient", "status", "progress", "url"}),
    # A decision-support proposal was made, accepted, dismissed or became outdated.
    "care.proposal": frozenset({"id", "patient", "status", "url"}),
    # To a meeting's participants: the meeting or one of its cases changed.
    "care.meeting": frozenset({"meeting", "status", "case", "url"}),
}

# Message types that consumers implement as `realtime_event` (one event) and
# `realtime_events` (several, in order).
CONSUMER_MESSAGE_TYPE = "realtime.event"
CONSUMER_BATCH_TYPE = "realtime.events"

Messages = list[tuple[str, dict[str, Any]]]  # (group, channel-layer message)


class UnknownEvent(ValueError):
    pass


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def session_group(session_key: str) -> str:
    # The session key is a credential: the group name carries only a digest of it.
    return "session." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def build_event(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    expected = EVENT_TYPES.get(event_type)
    if expected is None:
        raise UnknownEvent(f"undeclared event type {event_type!r}")
    if set(payload) != expected:
        raise UnknownEvent(
            f"{event_type} payload keys {sorted(payload)} differ from {sorted(expected)}"
        )
    return {"type": event_type, **payload}


def send_event_on_commit(event_type: str, payload: dict[str, Any], groups: Iterable[str]) -> None:
    """Validate now, send when (and only if) the current transaction commits."""
    event = build_event(event_type, payload)
    targets = list(groups)
    transaction.on_commit(lambda: _send(event, targets))


def send_events_on_commit(events: Iterable[tuple[str, dict[str, Any], Iterable[str]]]) -> None:
    """Many events at once (validated now): one trip through the event loop on commit."""
    batch = [(build_event(kind, payload), list(groups)) for kind, payload, groups in events]
    if batch:
        transaction.on_commit(lambda: _send_many(batch))


def _send_many(batch: list[tuple[dict[str, Any], list[str]]]) -> None:
    """One channel-layer message per group, carrying its events in order.

    A busy clinician's group may get a hundred events from one batch: sent one by one they would
    fill the socket's channel (and the layer drops what overflows); one message holds them all.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    per_group: dict[str, list[dict[str, Any]]] = {}
    for event, groups in batch:
        for group in groups:
            per_group.setdefault(group, []).append(event)
    _deliver(
        layer,
        [
            (group, {"type": CONSUMER_BATCH_TYPE, "events": events})
            for group, events in per_group.items()
        ],
    )


def _send(event: dict[str, Any], groups: list[str]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    _deliver(layer, [(group, {"type": CONSUMER_MESSAGE_TYPE, "event": event}) for group in groups])


def _deliver(layer: Any, messages: Messages) -> None:
    if type(layer).__module__.startswith("channels_redis"):
        _pusher.submit(messages)  # returns at once; sent in order by the process's pusher
        return
    try:  # the in-memory layer belongs to the server's own event loop
        async_to_sync(_send_groups)(layer, messages)
    except Exception:  # noqa: BLE001 - a live push must never break the committed work
        logger.exception("could not push live events to %d groups", len(messages))


async def _send_groups(layer: Any, messages: Messages) -> None:
    sends = [layer.group_send(group, message) for group, message in messages]
    for outcome in await asyncio.gather(*sends, return_exceptions=True):
        if isinstance(outcome, Exception):
            logger.error("could not push live events: %r", outcome)


class _Pusher:
    """One event-loop thread per process that sends live events, in the order they came.

    `async_to_sync` from a plain thread (the MQTT ingestor, Celery workers, commands) starts a
    new event loop for each call, and channels-redis then opens new connections: about 2 ms per
    commit, on the committing thread. Here the loop and its connections live as long as the
    process, and the committing thread only hands the events over.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Messages] | None = None
        self._thread: threading.Thread | None = None

    def submit(self, messages: Messages) -> None:
        loop, queue = self._start()
        loop.call_soon_threadsafe(queue.put_nowait, messages)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything handed over is sent (at exit, and for tests that need it)."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None or self._thread is None or not self._thread.is_alive():
            return
        done = asyncio.run_coroutine_threadsafe(queue.join(), loop)
        try:
            done.result(timeout)
        except Exception:  # noqa: BLE001 - at exit, a push that cannot finish is dropped
            logger.warning("live events still queued after %.0f s", timeout)

    def _start(
        self,
    ) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[Messages]]:
        with self._lock:
            # After a fork (Celery's prefork pool) the parent's thread is not running here.
            if self._thread is None or not self._thread.is_alive():
                ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(ready,), name="realtime-pusher", daemon=True
                )
                self._thread.start()
                ready.wait()
            assert self._loop is not None and self._queue is not None  # noqa: S101 - set by _run
            return self._loop, self._queue

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop, self._queue = loop, asyncio.Queue()
        loop.create_task(self._work(self._queue))
        ready.set()
        loop.run_forever()

    async def _work(self, queue: asyncio.Queue[Messages]) -> None:
        while True:
            messages = await queue.get()
            try:
                layer = get_channel_layer()
                if layer is not None:
                    await _send_groups(layer, messages)
            except Exception:  # noqa: BLE001 - a live push must never stop the pusher
                logger.exception("could not push live events to %d groups", len(messages))
            finally:
                queue.task_done()


_pusher = _Pusher()
atexit.register(_pusher.flush)


def flush(timeout: float = 5.0) -> None:
    """Wait until this process's live events are sent (they go out in the background)."""
    _pusher.flush(timeout)
