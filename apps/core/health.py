"""Readiness checks of the services the web process depends on."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_cache() -> None:
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("value written was not read back")
    cache.delete(key)


def check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def roundtrip() -> None:
        import asyncio

        channel = await layer.new_channel()
        await layer.send(channel, {"type": "readyz.ping"})
        message = await asyncio.wait_for(layer.receive(channel), timeout=2)
        if message.get("type") != "readyz.ping":
            raise RuntimeError("unexpected message")

    async_to_sync(roundtrip)()


def check_broker() -> None:
    from virtualhospital.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def readiness_checks() -> dict[str, Callable[[], None]]:
    checks: dict[str, Callable[[], None]] = {
        "database": check_database,
        "cache": check_cache,
        "channel_layer": check_channel_layer,
    }
    if settings.REDIS_URL:
        checks["broker"] = check_broker
    return checks


def run_checks() -> dict[str, str]:
    results = {}
    for name, check in readiness_checks().items():
        try:
            check()
        except Exception as error:  # noqa: BLE001 - every failure is reported, none raised
            results[name] = f"error: {type(error).__name__}: {error}"[:300]
        else:
            results[name] = "ok"
    return results
