"""`/ws/messages/<thread>/`: an open conversation page's socket.

Besides the user's and the session's groups (inherited), the socket joins the thread's group and
so receives `messaging.message` (a new message) and `messaging.read` (a read receipt) live. The
events carry identifiers only: the page fetches the rendered message over HTTP, where access is
checked (and audited) again, so a socket left open after its access ended learns no content.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from apps.accounts.consumers import CLOSE_UNAUTHENTICATED, UserConsumer, scope_is_verified
from apps.records.access import deny

from .access import thread_access
from .models import Thread
from .services.threads import thread_group

# Read by static/js: the same code as a video room one may not enter.
CLOSE_NOT_ALLOWED = 4404


def admit(scope: dict[str, Any], thread_id: int) -> int | None:
    """None when the socket may follow the thread, else the close code (a refusal is audited)."""
    user = scope.get("user")
    if user is None or not user.is_authenticated or not scope_is_verified(scope):
        return CLOSE_UNAUTHENTICATED
    thread = Thread.objects.select_related("patient__user").filter(pk=thread_id).first()
    if thread is None or thread_access(user, thread) is None:
        deny(
            user,
            request=None,
            what="live thread",
            object_type="messaging.thread",
            object_id=thread_id,
            patient_id=thread.patient_id if thread is not None else "",
        )
        return CLOSE_NOT_ALLOWED
    return None


class ThreadConsumer(UserConsumer):
    """Live messages and read receipts of one conversation (plus the user's own events)."""

    async def connect(self) -> None:
        thread_id: int = self.scope["url_route"]["kwargs"]["thread"]
        refused = await database_sync_to_async(admit)(self.scope, thread_id)
        if refused is not None:
            await self.close(code=refused)
            return
        # Joined before the accept, so that nothing sent once the page is open goes missing.
        group = thread_group(thread_id)
        await self.channel_layer.group_add(group, self.channel_name)
        await super().connect()
        if hasattr(self, "groups_joined"):
            self.groups_joined.append(group)
        else:  # refused by the base class after all (the session ended meanwhile)
            await self.channel_layer.group_discard(group, self.channel_name)
