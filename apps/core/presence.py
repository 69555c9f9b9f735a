"""Who has a live page open: a count of open sockets per user, in the shared cache.

Used to decide whether someone will see a live event or needs a notification instead. Pages send
a heartbeat (static/js/realtime.js) that keeps their counts alive; a worker that dies without
closing its sockets leaves a count behind, which expires `TTL` seconds after the last
heartbeat, erring towards "online" for that long at worst.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.cache import cache

TTL = 15 * 60  # pages beat every 5 minutes


def _key(user_id: int) -> str:
    return f"presence:{user_id}"


ANYONE = "presence:anyone"


def _bump(key: str, by: int) -> int:
    cache.add(key, 0, timeout=TTL)
    try:
        return int(cache.incr(key, by))
    except ValueError:  # expired between add and incr
        cache.set(key, max(by, 0), timeout=TTL)
        return max(by, 0)


def anyone_online() -> bool:
    """Whether any socket is open at all: one cache read that spares busy writers the rest."""
    return int(cache.get(ANYONE) or 0) > 0


def connected(user_id: int) -> None:
    _bump(ANYONE, 1)
    cache.touch(ANYONE, TTL)
    key = _key(user_id)
    cache.add(key, 0, timeout=TTL)
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=TTL)
    cache.touch(key, TTL)


def disconnected(user_id: int) -> None:
    if _bump(ANYONE, -1) <= 0:
        cache.delete(ANYONE)
    key = _key(user_id)
    try:
        if cache.decr(key) <= 0:
            cache.delete(key)
    except ValueError:  # already gone
        pass


def still_here(user_id: int) -> None:
    """A page's heartbeat: keeps the counts of a long-open socket from expiring."""
    cache.touch(_key(user_id), TTL)
    cache.touch(ANYONE, TTL)


def online(user_ids: Iterable[int]) -> set[int]:
    """The users among `user_ids` with at least one open socket."""
    keys = {_key(user_id): user_id for user_id in user_ids}
    if not keys:
        return set()
    return {keys[key] for key, count in cache.get_many(list(keys)).items() if int(count) > 0}
