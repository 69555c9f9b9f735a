"""Fixed-window attempt counters in the cache (shared by all processes when Redis is used)."""

from __future__ import annotations

from django.core.cache import cache


def hit(key: str, limit: int, window: int) -> bool:
    """Count one attempt under `key`; False once more than `limit` happened in the window."""
    cache_key = f"rl:{key}"
    cache.add(cache_key, 0, timeout=window)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=window)
        count = 1
    return count <= limit


def is_limited(key: str, limit: int) -> bool:
    return (cache.get(f"rl:{key}") or 0) >= limit


def reset(key: str) -> None:
    cache.delete(f"rl:{key}")
