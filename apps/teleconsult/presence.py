"""Who is connected to a consultation room, across web processes, and the sockets' rate limit.

The registry is a Redis hash per room when REDIS_URL is set (every web process sees it); without
Redis the channel layer is in memory, one process, and so is the registry. Used by
`consumers.ConsultConsumer`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

import orjson
from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis

logger = logging.getLogger(__name__)

# Each socket refreshes its registry entry this often; an entry not refreshed for STALE seconds
# belongs to a process that died without saying goodbye and is ignored.
BEAT_SECONDS = 30.0
STALE_SECONDS = 90.0
REGISTRY_TTL = 12 * 3600


# ---------------------------------------------------------------------------------------------
# Who is connected to a room, across web processes


def public_peer(entry: dict[str, Any]) -> dict[str, Any]:
    """A peer as browsers see it (never its channel name)."""
    return {k: entry[k] for k in ("key", "seat", "name", "admitted")}


# Redis scripts: an entry is only changed by the connection that owns it (same channel), except
# `admitted`, which the admitting clinician's socket sets so a newcomer reads it at once.
_TOUCH = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local e = cjson.decode(cur)
  if e['channel'] == ARGV[2] then
    e['seen'] = tonumber(ARGV[3])
    redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(e))
    return 1
  end
end
return 0
"""
_REMOVE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and cjson.decode(cur)['channel'] == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""
_SET_ADMITTED = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local e = cjson.decode(cur)
  e['admitted'] = ARGV[2] == '1'
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(e))
  return 1
end
return 0
"""


_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis] = weakref.WeakKeyDictionary()


def _redis() -> Redis:
    """This event loop's Redis client (an asyncio client belongs to one loop), closed with it.

    Closing it with the loop is what channels-redis does for its own connections too.
    """
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # A blocking pool waits for a free connection instead of failing when a burst of
        # sockets (every browser reconnecting after a restart) needs more at once.
        pool = BlockingConnectionPool.from_url(
            str(settings.REDIS_URL), max_connections=50, timeout=20
        )
        client = _clients[loop] = Redis(connection_pool=pool)
        original_close = loop.close

        def close() -> None:
            leftover = _clients.pop(loop, None)
            if leftover is not None:
                loop.run_until_complete(leftover.aclose(close_connection_pool=True))
            original_close()

        loop.close = close  # type: ignore[method-assign]
    return client


class RedisRegistry:
    """A room's connected people in one Redis hash (field: person key, value: JSON entry)."""

    @staticmethod
    def _key(room: str) -> str:
        layer: dict[str, Any] = settings.CHANNEL_LAYERS["default"]
        return f"{layer.get('CONFIG', {}).get('prefix', 'vh')}:consult-room:{room}"

    async def put(self, room: str, entry: dict[str, Any]) -> None:
        key = self._key(room)
        async with _redis().pipeline(transaction=True) as pipe:
            pipe.hset(key, entry["key"], orjson.dumps(entry))
            pipe.expire(key, REGISTRY_TTL)
            await pipe.execute()

    async def touch(self, room: str, person: str, channel: str) -> None:
        await _redis().eval(_TOUCH, 1, self._key(room), person, channel, time.time())

    async def remove(self, room: str, person: str, channel: str) -> None:
        await _redis().eval(_REMOVE, 1, self._key(room), person, channel)

    async def set_admitted(self, room: str, person: str, admitted: bool) -> None:
        flag = "1" if admitted else "0"
        await _redis().eval(_SET_ADMITTED, 1, self._key(room), person, flag)

    async def members(self, room: str) -> list[dict[str, Any]]:
        raw = await _redis().hgetall(self._key(room))
        oldest = time.time() - STALE_SECONDS
        entries = [orjson.loads(value) for value in raw.values()]
        for entry in entries:
            if entry["seen"] < oldest:
                await self.remove(room, entry["key"], entry["channel"])
        return [entry for entry in entries if entry["seen"] >= oldest]


class LocalRegistry:
    """The same for the in-memory channel layer (one process: a dict is shared by all)."""

    rooms: dict[str, dict[str, dict[str, Any]]] = {}

    async def put(self, room: str, entry: dict[str, Any]) -> None:
        self.rooms.setdefault(room, {})[entry["key"]] = dict(entry)

    async def touch(self, room: str, person: str, channel: str) -> None:
        entry = self.rooms.get(room, {}).get(person)
        if entry is not None and entry["channel"] == channel:
            entry["seen"] = time.time()

    async def remove(self, room: str, person: str, channel: str) -> None:
        people = self.rooms.get(room, {})
        if person in people and people[person]["channel"] == channel:
            del people[person]
            if not people:
                self.rooms.pop(room, None)

    async def set_admitted(self, room: str, person: str, admitted: bool) -> None:
        entry = self.rooms.get(room, {}).get(person)
        if entry is not None:
            entry["admitted"] = admitted

    async def members(self, room: str) -> list[dict[str, Any]]:
        oldest = time.time() - STALE_SECONDS
        return [dict(e) for e in self.rooms.get(room, {}).values() if e["seen"] >= oldest]


def get_registry() -> RedisRegistry | LocalRegistry:
    """Redis whenever the channel layer is on Redis (several processes may serve a room)."""
    return RedisRegistry() if settings.REDIS_URL else LocalRegistry()


# ---------------------------------------------------------------------------------------------
# Rate limit


class RateLimit:
    """A token bucket of `rate` messages per 10 s, and a second one for the messages it drops.

    A socket sending a little too fast loses the excess; one sending three times the rate (the
    allowance plus twice as many dropped) empties the second bucket too and is closed.
    """

    OK, DROP, CLOSE = 0, 1, 2

    def __init__(self, rate: int) -> None:
        self.rate = float(rate)
        self.tokens = float(rate)
        self.strikes = 2.0 * rate
        self.stamp = time.monotonic()

    def take(self) -> int:
        now = time.monotonic()
        elapsed, self.stamp = now - self.stamp, now
        self.tokens = min(self.rate, self.tokens + elapsed * self.rate / 10)
        self.strikes = min(2 * self.rate, self.strikes + elapsed * 2 * self.rate / 10)
        if self.tokens >= 1:
            self.tokens -= 1
            return self.OK
        if self.strikes >= 1:
            self.strikes -= 1
            return self.DROP
        return self.CLOSE
