"""Who has a live page open: a count of open sockets per user, in the shared cache.

Used to decide whether someone will see a live event or needs a notification instead. A worker
that dies without closing its sockets leaves a count behind: it expires after `TTL` seconds
without a new connection, which errs towards "online" for that long at worst.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.cache import cache

TTL = 12 * 3600


def _key(user_id: int) -> str:
    return f"presence:{user_id}"


def connected(user_id: int) -> None:
    key = _key(user_id)
    cache.add(key, 0, timeout=TTL)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=TTL)
    cache.touch(key, TTL)


def disconnected(user_id: int) -> None:
    key = _key(user_id)
    try:
        if cache.decr(key) <= 0:
            cache.delete(key)
    except ValueError:  # already gone
        pass


def online(user_ids: Iterable[int]) -> set[int]:
    """The users among `user_ids` with at least one open socket."""
    keys = {_key(user_id): user_id for user_id in user_ids}
    if not keys:
        return set()
    return {keys[key] for key, count in cache.get_many(list(keys)).items() if int(count) > 0}
