"""Malware scanning of uploads: every file is scanned before it is checked and stored.

A scanner is any class with `scan(content: bytes, filename: str) -> str | None`: None when the
file is clean, else the name of the threat found. A scanner that cannot answer raises
`ScanUnavailable`, and the upload is refused (fail closed: a file nobody could check is not
stored). `settings.UPLOAD_SCANNERS` lists them by dotted path; `scan()` runs them in order.

Built in:
- `EicarScanner` finds the EICAR anti-virus test string anywhere in the file. It proves the
  chain works end to end (a real scanner detects the same file) and catches it even when it is
  hidden after the end of a picture or inside a PDF, where the type checks would not look.
- `ClamdScanner` sends the file to a ClamAV daemon (`CLAMD_URL=tcp://host:3310`) with its
  INSTREAM command.
"""

from __future__ import annotations

import functools
import logging
import socket
import struct
from typing import Protocol
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

# The EICAR test file (https://www.eicar.org): 68 printable characters. Written in two halves so
# that this source file is not itself reported by an anti-virus on a developer's machine.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_THREAT = "Eicar-Test-Signature"

# ClamAV's default StreamMaxLength is 25 MB; chunks of 64 KiB keep memory flat on both sides.
CLAMD_CHUNK = 64 * 1024
CLAMD_TIMEOUT_SECONDS = 30.0


class Scanner(Protocol):
    def scan(self, content: bytes, filename: str) -> str | None: ...


class Infected(Exception):
    """A scanner found a threat in the file."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class ScanUnavailable(Exception):
    """A scanner could not give an answer (down, timed out, refused the file)."""


class EicarScanner:
    """Finds the EICAR test string anywhere in the file.

    The EICAR definition wants it at the very start, followed by nothing but whitespace; any
    position is accepted here, so the variants with trailing whitespace, and the string
    appended to a valid picture or PDF, are all found.
    """

    def scan(self, content: bytes, filename: str) -> str | None:
        return EICAR_THREAT if EICAR in content else None


class ClamdScanner:
    """Asks a ClamAV daemon over TCP (`INSTREAM`): clean, a threat's name, or unavailable."""

    def __init__(self, url: str | None = None, timeout: float = CLAMD_TIMEOUT_SECONDS) -> None:
        self.url = url
        self.timeout = timeout

    def _address(self) -> tuple[str, int]:
        url = self.url or settings.CLAMD_URL
        if not url:
            raise ImproperlyConfigured("ClamdScanner is configured but CLAMD_URL is not set")
        parts = urlsplit(url)
        if parts.scheme != "tcp" or not parts.hostname:
            raise ImproperlyConfigured(f"CLAMD_URL must be tcp://host:port, not {url!r}")
        return parts.hostname, parts.port or 3310

    def scan(self, content: bytes, filename: str) -> str | None:
        host, port = self._address()
        try:
            with socket.create_connection((host, port), timeout=self.timeout) as conn:
                conn.sendall(b"zINSTREAM\0")
                view = memoryview(content)
                for start in range(0, len(view), CLAMD_CHUNK):
                    chunk = view[start : start + CLAMD_CHUNK]
                    conn.sendall(struct.pack("!L", len(chunk)) + chunk)
                conn.sendall(struct.pack("!L", 0))
                reply = _read_reply(conn)
        except OSError as error:
            logger.warning("clamd at %s:%s could not scan an upload: %s", host, port, error)
            raise ScanUnavailable(f"clamd unreachable: {error}") from None
        return _parse_reply(reply, host, port)


def _read_reply(conn: socket.socket) -> bytes:
    """clamd's answer, up to its terminating NUL (the `z` form of the command) or EOF."""
    reply = b""
    while b"\0" not in reply and len(reply) < 4096:
        data = conn.recv(4096)
        if not data:
            break
        reply += data
    return reply.split(b"\0", 1)[0]


def _parse_reply(reply: bytes, host: str, port: int) -> str | None:
    """`stream: OK`, `stream: <name> FOUND`, or an error such as a size limit."""
    text = reply.decode("utf-8", "replace").strip()
    _stream, _sep, verdict = text.rpartition(": ")
    if verdict == "OK":
        return None
    if verdict.endswith(" FOUND"):
        return verdict.removesuffix(" FOUND").strip() or "unknown"
    logger.warning("clamd at %s:%s gave no verdict: %r", host, port, text[:200])
    raise ScanUnavailable(f"clamd answered {text[:200]!r}")


@functools.cache
def _load(paths: tuple[str, ...]) -> tuple[Scanner, ...]:
    return tuple(import_string(path)() for path in paths)


def scanners() -> tuple[Scanner, ...]:
    """The configured scanners, each imported and built once."""
    return _load(tuple(settings.UPLOAD_SCANNERS))


def scan(content: bytes, filename: str) -> None:
    """Run every configured scanner: Infected on the first threat found, ScanUnavailable when a
    scanner cannot answer."""
    for scanner in scanners():
        threat = scanner.scan(content, filename)
        if threat:
            logger.warning(
                "upload refused by %s: %s (%s bytes)", type(scanner).__name__, threat, len(content)
            )
            raise Infected(threat)
