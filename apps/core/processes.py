"""Child processes for benchmarks and live-server tests: ports, environment, output, memory.

A benchmark (or a test) that starts daphne or an ingestor in its own process needs the same
few things: a free local port, the database it is itself using (under pytest, the test
database), a thread reading the child's output so its pipe never fills, the child's peak
memory, and a clean stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO

from django.conf import settings
from django.db import connection


def free_port() -> int:
    """A TCP port nobody listens on at the moment, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.02)


def database_url() -> str:
    """This process's database as a URL for a child (under pytest, the test database)."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment, pointed at its database, with unbuffered output."""
    return {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1", **extra}


class ChildProcess:
    """A subprocess whose output a thread reads (the last lines are kept for error reports).

    Subclasses look at each line in `on_line` (counting what the child reports).
    """

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.lines: deque[bytes] = deque(maxlen=200)
        self.proc = subprocess.Popen(  # noqa: S603 - argv built by the caller, no shell
            argv,
            cwd=settings.BASE_DIR,
            env=env if env is not None else child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.lines.append(line)
            self.on_line(line)

    def on_line(self, line: bytes) -> None:
        """Called for each line the child prints (in the reading thread)."""

    def output(self) -> str:
        return b"".join(self.lines).decode(errors="replace")

    def rss_mb(self, field_name: str = "VmHWM") -> float:
        """VmHWM: the most resident memory the child ever had (VmRSS: now)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as status:
                for line in status:
                    if line.startswith(f"{field_name}:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit within `timeout` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        return self.proc.returncode
