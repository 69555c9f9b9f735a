"""A real daphne (ASGI: HTTP and WebSockets) on the test database, for live-update browser tests.

pytest-django's live_server speaks WSGI only. This server shares the test process's database
(the test database's name) and Redis, so events the test sends through the channel layer reach
the browser's socket.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest
from django.db import connection

from apps.core.processes import accepts, database_url, free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0  # seconds: importing Django and the apps


@dataclass(frozen=True)
class AsgiServer:
    url: str
    log: str


def _warm_up(url: str, proc: subprocess.Popen[bytes], log: IO[str], deadline: float) -> None:
    """Wait for a first answer: the first request loads what the import did not (URLs, static)."""
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            pytest.fail(f"daphne does not answer (exit {proc.poll()}):\n{log.read()[-4000:]}")
        time.sleep(0.05)  # polling with a deadline


@pytest.fixture
def asgi_server(transactional_db: None) -> Iterator[AsgiServer]:
    assert connection.vendor == "postgresql", "the ASGI server needs DATABASE_URL (PostgreSQL)"
    redis_url = os.environ.get("REDIS_URL", "")
    assert redis_url, "live events cross processes through Redis: set REDIS_URL"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DB_CONN_MAX_AGE": "0",
        "REDIS_URL": redis_url,
        "DEBUG": "1",  # static files straight from static/ (no collectstatic)
        "VH_TESTING": "1",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "virtualhospital.settings",
    }
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        + ["virtualhospital.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not accepts(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"daphne did not start (exit {proc.poll()}):\n{log.read()[-4000:]}")
            time.sleep(0.05)  # polling the port, with a deadline
        url = f"http://127.0.0.1:{port}"
        _warm_up(url, proc, log, deadline)
        yield AsgiServer(url=url, log=log.name)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        Path(log.name).unlink(missing_ok=True)
