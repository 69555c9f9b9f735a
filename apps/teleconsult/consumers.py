"""Signalling of video consultations: `/ws/consult/<room>/` (protocol in docs/teleconsult.md).

The server relays what browsers need to set up their peer connections (SDP descriptions, ICE
candidates), annotations and media state, and runs the waiting room. Media never pass here.

Several web processes can serve one room: everything between sockets goes through the channel
layer (the room's group, each person's group, or a socket's own channel), and who is connected
to a room is kept in a registry (a Redis hash when REDIS_URL is set; without it the channel
layer is in memory, one process, and so is the registry). Each socket keeps its own copy of the
room (who is there, who is admitted), kept current by group messages, so relaying a message
costs no database query.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from redis.exceptions import RedisError

from apps.accounts.consumers import CLOSE_SESSION_ENDED, CLOSE_UNAUTHENTICATED, scope_is_verified
from apps.core.realtime import (
    CONSUMER_MESSAGE_TYPE,
    build_event,
    session_group,
    user_group,
)
from apps.scheduling.models import Participant

from .models import Seat
from .presence import BEAT_SECONDS, RateLimit, get_registry, public_peer
from .services import ConsultError
from .services.ice import ice_servers
from .services.rooms import (
    GUEST_SESSION_KEY,
    Member,
    arrive,
    call_connected,
    do_admit,
    do_deny,
    is_admitted,
    leave,
    member_for_scope,
    member_group,
    room_group,
    still_allowed,
)

logger = logging.getLogger(__name__)

# Close codes (private range), read by static/js/consult.js.
CLOSE_REFUSED = 4403  # denied by a clinician, or access ended (guest link expired or revoked)
CLOSE_NOT_ALLOWED = 4404  # not a member of this room (or no such room)
CLOSE_REPLACED = 4409  # the same person connected again (another tab): the newer one wins
CLOSE_ROOM_CLOSED = 4410  # the call ended or the appointment was cancelled
CLOSE_RATE_LIMITED = 4429  # far over the message rate

MAX_MESSAGE_BYTES = 64 * 1024
# ---------------------------------------------------------------------------------------------
# Entering a room (one trip to the database thread)


@dataclass
class Entry:
    member: Member
    admitted: bool
    clinician_ids: list[int]
    patient_name: str
    call: dict[str, Any]
    ice_servers: list[dict[str, Any]]
    url: str
    session_key: str | None
    guest_expires_in: float | None = None
    groups: list[str] = field(default_factory=list)


def enter(room: str, scope: dict[str, Any]) -> Entry | int:
    """The member the socket is in the room, arrived; or the close code that refuses it."""
    user = scope.get("user")
    session = scope.get("session")
    if user is not None and user.is_authenticated and not scope_is_verified(scope):
        user = None  # staff without their second factor are nobody here
    signed_in = user is not None and user.is_authenticated
    guest_id = session.get(GUEST_SESSION_KEY) if session is not None else None
    if not signed_in and guest_id is None:
        return CLOSE_UNAUTHENTICATED
    member = member_for_scope(room, {**scope, "user": user})
    if member is None:
        return CLOSE_NOT_ALLOWED
    attendance = arrive(member)
    consultation = member.consultation
    if consultation.is_staff_room:
        clinician_ids = []  # everybody is a clinician, admitted at once: nobody waits
    elif consultation.appointment_id is not None:
        clinician_ids = list(
            Participant.objects.filter(
                appointment_id=consultation.appointment_id, active=True
            ).values_list("user_id", flat=True)
        )
    else:
        clinician_ids = [consultation.opened_by_id] if consultation.opened_by_id else []
    guest_expires_in = None
    if member.guest is not None:
        guest_expires_in = (member.guest.expires_at - timezone.now()).total_seconds()
    started = consultation.started_at
    return Entry(
        member=member,
        admitted=is_admitted(attendance),
        clinician_ids=clinician_ids,
        patient_name=consultation.patient.full_name if consultation.patient else "",
        call={
            "status": consultation.status,
            "started_at": started.isoformat() if started else None,
        },
        ice_servers=ice_servers(member.key),
        url=reverse("teleconsult:room", args=[consultation.room]),
        session_key=session.session_key if signed_in and session is not None else None,
        guest_expires_in=guest_expires_in,
    )


# ---------------------------------------------------------------------------------------------
# The consumer


class ConsultConsumer(AsyncWebsocketConsumer):
    """One browser's socket in a consultation room (see the module docstring)."""

    entry: Entry | None = None
    closing = False
    replaced = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its per-message database clean-up.

        Channels runs `close_old_connections` in the process's one sync thread before every
        message; a relayed signal then waits behind whatever database work the process is doing
        (people connecting, calls starting). This consumer touches the database only through
        `database_sync_to_async`, which cleans up around each call by itself.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # -- connection ---------------------------------------------------------------------------

    async def connect(self) -> None:
        self.room: str = self.scope["url_route"]["kwargs"]["room"]
        self.peers: dict[str, dict[str, Any]] = {}
        self.tasks: list[asyncio.Task[None] | asyncio.TimerHandle] = []
        self.limit = RateLimit(settings.TELECONSULT_SIGNAL_RATE)
        self.registry = get_registry()
        self.call_started = False
        self.connected_at = time.time()
        entered = await database_sync_to_async(enter)(self.room, self.scope)
        if isinstance(entered, int):
            await self.close(code=entered)
            return
        self.entry = entered
        member = entered.member
        self.member = member
        self.key = member.key
        self.admitted = entered.admitted
        self.call_started = entered.call["started_at"] is not None
        groups = [room_group(self.room), member_group(self.room, self.key)]
        if member.user is not None:
            # Logout closes the session's sockets; deactivation the user's.
            groups.append(user_group(member.user.pk))
            if entered.session_key:
                groups.append(session_group(entered.session_key))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        entered.groups = groups
        await self.accept()
        # The newest connection of a person wins: older ones (any process) close.
        await self.channel_layer.group_send(
            member_group(self.room, self.key),
            {"type": "consult.replaced", "channel": self.channel_name, "at": self.connected_at},
        )
        me = self._me()
        await self.registry.put(self.room, me)
        for entry in await self.registry.members(self.room):
            if entry["key"] != self.key:
                self.peers[entry["key"]] = entry
        await self._send(
            {
                "type": "welcome",
                "you": public_peer(me),
                "peers": [public_peer(p) for p in self.peers.values() if self._sees(p)],
                "ice_servers": entered.ice_servers,
                "call": entered.call,
            }
        )
        await self.channel_layer.group_send(
            room_group(self.room), {"type": "consult.joined", "peer": me}
        )
        if not self.admitted:
            await self._announce_waiting(entered)
        await self._maybe_call_connected()
        loop = asyncio.get_running_loop()
        self.tasks.append(loop.create_task(self._beat()))
        if entered.guest_expires_in is not None:
            self.tasks.append(
                loop.call_later(
                    max(0.0, entered.guest_expires_in),
                    lambda: self.tasks.append(loop.create_task(self._expired())),
                )
            )

    async def disconnect(self, code: int) -> None:
        self.closing = True
        for task in self.tasks:
            task.cancel()
        entry = self.entry
        if entry is None:
            return
        self.entry = None
        for group in entry.groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        await self.registry.remove(self.room, self.key, self.channel_name)
        await self.channel_layer.group_send(
            room_group(self.room),
            {"type": "consult.left", "key": self.key, "channel": self.channel_name},
        )
        if not self.admitted:
            await self._announce_waiting(entry)
        if not self.replaced:  # the newer connection is the person's presence now
            await database_sync_to_async(leave)(self.member)

    async def _close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            await self.close(code=code)

    def _me(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "seat": self.member.seat,
            "name": self.member.display_name,
            "admitted": self.admitted,
            "channel": self.channel_name,
            "seen": time.time(),
        }

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(BEAT_SECONDS)
            try:
                await self.registry.touch(self.room, self.key, self.channel_name)
            except RedisError as exc:  # next beat, then; the entry outlives one miss
                logger.warning("consult %s: presence not refreshed (%r)", self.room, exc)

    async def _expired(self) -> None:
        await self._error("not_allowed", _("Your invitation has expired."))
        await self._close(CLOSE_REFUSED)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def is_clinician(self) -> bool:
        return self.member.seat == Seat.CLINICIAN

    def _sees(self, peer: dict[str, Any]) -> bool:
        """Clinicians see everyone connected; others only admitted people, once admitted."""
        return self.is_clinician or (self.admitted and peer["admitted"])

    async def _send(self, message: dict[str, Any]) -> None:
        if not self.closing:
            await self.send(text_data=orjson.dumps(message).decode())

    async def _error(self, code: str, message: str) -> None:
        await self._send({"type": "error", "code": code, "message": message})

    async def _announce_waiting(self, entry: Entry) -> None:
        """Tell the consultation's clinicians (any page) who is waiting in the room now."""
        if not entry.clinician_ids:
            return
        waiting = [
            {"key": p["key"], "name": p["name"], "seat": p["seat"]}
            for p in await self.registry.members(self.room)
            if not p["admitted"]
        ]
        event = build_event(
            "consult.waiting",
            {
                "room": self.room,
                "patient_name": entry.patient_name,
                "waiting": waiting,
                "url": entry.url,
            },
        )
        for pk in entry.clinician_ids:
            await self.channel_layer.group_send(
                user_group(pk), {"type": CONSUMER_MESSAGE_TYPE, "event": event}
            )

    async def _maybe_call_connected(self) -> None:
        """A clinician's socket starts the call once an admitted patient is connected too."""
        if self.call_started or not self.is_clinician or self.member.user is None:
            return
        if any(p["seat"] == Seat.PATIENT and p["admitted"] for p in self.peers.values()):
            self.call_started = True
            await database_sync_to_async(call_connected)(self.member.consultation, self.member.user)

    # -- messages from the browser -------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.entry is None or self.closing:
            return
        verdict = self.limit.take()
        if verdict == RateLimit.CLOSE:
            await self._error("rate_limited", _("Too many messages."))
            await self._close(CLOSE_RATE_LIMITED)
            return
        if verdict == RateLimit.DROP:
            await self._error("rate_limited", _("Too many messages: this one was dropped."))
            return
        if text_data is None or len(text_data.encode()) > MAX_MESSAGE_BYTES:
            await self._error("bad_message", _("Messages are JSON text of at most 64 KB."))
            return
        try:
            content = orjson.loads(text_data)
        except orjson.JSONDecodeError:
            await self._error("bad_message", _("This message is not JSON."))
            return
        kind = content.get("type") if isinstance(content, dict) else None
        handler = self.HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            await self._error("bad_message", _("Unknown message type."))
            return
        await handler(self, content)

    async def on_ping(self, content: dict[str, Any]) -> None:
        await self._send({"type": "pong"})

    async def on_signal(self, content: dict[str, Any]) -> None:
        to, data = content.get("to"), content.get("data")
        if not isinstance(to, str) or not isinstance(data, dict):
            await self._error("bad_message", _("A signal needs “to” and an object “data”."))
            return
        peer = self.peers.get(to)
        if not self.admitted or peer is None or not peer["admitted"]:
            await self._error("not_allowed", _("Signals go between admitted people only."))
            return
        try:
            await self.channel_layer.send(
                peer["channel"],
                {"type": "consult.relay", "kind": "signal", "from": self.key, "data": data},
            )
        except (ChannelFull, RedisError) as exc:
            # The browsers' negotiation recovers from a lost message; a closed socket is worse.
            logger.warning("consult %s: signal to %s dropped (%r)", self.room, to, exc)

    async def on_broadcast(self, content: dict[str, Any]) -> None:
        """`annotation` and `state`: to every admitted person of the room."""
        data = content.get("data")
        if not isinstance(data, dict):
            await self._error("bad_message", _("“data” must be an object."))
            return
        if not self.admitted:
            await self._error("not_allowed", _("Wait until you are admitted."))
            return
        try:
            await self.channel_layer.group_send(
                room_group(self.room),
                {"type": "consult.relay", "kind": content["type"], "from": self.key, "data": data},
            )
        except RedisError as exc:
            logger.warning("consult %s: %s dropped (%r)", self.room, content["type"], exc)

    async def on_admit(self, content: dict[str, Any]) -> None:
        await self._decide(content, admit=True)

    async def on_deny(self, content: dict[str, Any]) -> None:
        await self._decide(content, admit=False)

    async def _decide(self, content: dict[str, Any], *, admit: bool) -> None:
        if not self.is_clinician:
            await self._error("not_allowed", _("Only a clinician of the consultation may admit."))
            return
        key = content.get("key")
        if not isinstance(key, str) or key == self.key:
            await self._error("bad_message", _("Say whom (“key”)."))
            return
        action = do_admit if admit else do_deny
        try:
            await database_sync_to_async(action)(self.member, key)
        except ConsultError as exc:
            await self._error("not_allowed", str(exc))
            return
        # The registry first: a socket connecting from now on reads the new state.
        await self.registry.set_admitted(self.room, key, admit)
        # The channel tells a late-delivered refusal from a later connection of the same person.
        peer = self.peers.get(key)
        await self.channel_layer.group_send(
            room_group(self.room),
            {
                "type": "consult.admitted" if admit else "consult.denied",
                "key": key,
                "channel": peer["channel"] if peer is not None else None,
            },
        )
        if self.entry is not None:
            await self._announce_waiting(self.entry)

    HANDLERS = {
        "ping": on_ping,
        "signal": on_signal,
        "annotation": on_broadcast,
        "state": on_broadcast,
        "admit": on_admit,
        "deny": on_deny,
    }

    # -- messages from the channel layer -------------------------------------------------------

    async def consult_relay(self, message: dict[str, Any]) -> None:
        sender = self.peers.get(message["from"])
        if self.admitted and sender is not None and sender["admitted"]:
            await self._send(
                {"type": message["kind"], "from": message["from"], "data": message["data"]}
            )

    async def consult_replaced(self, message: dict[str, Any]) -> None:
        # Only a newer connection replaces this one: a layer may deliver an older connection's
        # announcement after this one joined the group.
        if message["channel"] != self.channel_name and message["at"] >= self.connected_at:
            self.replaced = True
            await self._close(CLOSE_REPLACED)

    async def consult_joined(self, message: dict[str, Any]) -> None:
        peer = message["peer"]
        key = peer["key"]
        if key == self.key:
            return  # ourselves, or our own newer connection (which closes this one)
        known = self.peers.get(key)
        if known is not None and known["channel"] == peer["channel"]:
            return  # already read from the registry
        if known is not None and self._sees(known):
            await self._send({"type": "peer.left", "key": key})  # a reload: start afresh
        self.peers[key] = peer
        if self._sees(peer):
            await self._send({"type": "peer.joined", "peer": public_peer(peer)})
        await self._maybe_call_connected()

    async def consult_left(self, message: dict[str, Any]) -> None:
        known = self.peers.get(message["key"])
        if known is None or known["channel"] != message["channel"]:
            return
        del self.peers[message["key"]]
        if self._sees(known):
            await self._send({"type": "peer.left", "key": message["key"]})

    async def consult_admitted(self, message: dict[str, Any]) -> None:
        key = message["key"]
        if key == self.key:
            if not self.admitted:
                self.admitted = True
                peers = [public_peer(p) for p in self.peers.values() if p["admitted"]]
                await self._send({"type": "admitted", "peers": peers})
            return
        peer = self.peers.get(key)
        if peer is None or peer["admitted"]:
            return
        peer["admitted"] = True
        if self.admitted:
            await self._send({"type": "peer.admitted", "peer": public_peer(peer)})
        await self._maybe_call_connected()

    async def consult_denied(self, message: dict[str, Any]) -> None:
        key = message["key"]
        if key == self.key and message["channel"] in (None, self.channel_name):
            await self._send({"type": "denied"})
            await self._close(CLOSE_REFUSED)
            return
        peer = self.peers.get(key)
        if peer is not None and peer["admitted"]:
            visible = self._sees(peer)
            peer["admitted"] = False
            if visible and not self._sees(peer):
                await self._send({"type": "peer.left", "key": key})

    async def realtime_events(self, message: dict[str, Any]) -> None:
        for event in message["events"]:
            await self.realtime_event({"event": event})

    async def realtime_event(self, message: dict[str, Any]) -> None:
        """Server events: the room's are forwarded; the session's end closes the socket."""
        if self.closing or self.entry is None:
            return
        event = message["event"]
        kind = event["type"]
        if kind == "session.closed":
            await self._send(event)
            await self._close(CLOSE_SESSION_ENDED)
            return
        if not kind.startswith("consult.") or event.get("room") != self.room:
            return  # the user's other live events (notifications, alerts) are not for this page
        if kind == "consult.closed":
            await self._send(event)
            await self._close(CLOSE_ROOM_CLOSED)
        elif kind == "consult.recheck":
            if not await database_sync_to_async(still_allowed)(self.member):
                await self._error("not_allowed", _("You are no longer allowed in this room."))
                await self._close(CLOSE_REFUSED)
        elif self.admitted:
            # The call's chat and recording state are for those in the call, not the waiting.
            await self._send(event)
