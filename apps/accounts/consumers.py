"""Base WebSocket consumer: authenticated, second factor checked, closed when the session ends."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from apps.accounts.twofactor import session_satisfies_second_factor
from apps.core import presence
from apps.core.realtime import session_group, user_group

# Close codes in the private 4000-4999 range, read by static/js/realtime.js.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_SESSION_ENDED = 4408


def scope_is_verified(scope: dict[str, Any]) -> bool:
    """The same rule as the HTTP middleware: staff and 2FA users need a verified session."""
    user = scope.get("user")
    session = scope.get("session")
    if user is None or not user.is_authenticated or session is None:
        return False
    return session_satisfies_second_factor(user, session)


class UserConsumer(AsyncJsonWebsocketConsumer):
    """Joins the user's group and the session's group; subclasses add their own groups."""

    groups_joined: list[str]
    present_as: int | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not await database_sync_to_async(scope_is_verified)(self.scope):
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        session_key = self.scope["session"].session_key
        self.groups_joined = [user_group(user.pk), session_group(session_key)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self.present_as = user.pk
        await database_sync_to_async(presence.connected)(user.pk)

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)
        if getattr(self, "present_as", None) is not None:
            await database_sync_to_async(presence.disconnected)(self.present_as)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """The page's heartbeat (`{"type": "ping"}`) keeps its presence alive; nothing else."""
        if isinstance(content, dict) and content.get("type") == "ping" and self.present_as:
            await database_sync_to_async(presence.still_here)(self.present_as)

    async def realtime_events(self, message: dict[str, Any]) -> None:
        for event in message["events"]:
            await self.realtime_event({"event": event})
            if event["type"] == "session.closed":
                break

    async def realtime_event(self, message: dict[str, Any]) -> None:
        event = message["event"]
        await self.send_json(event)
        if event["type"] == "session.closed":
            await self.close(code=CLOSE_SESSION_ENDED)
