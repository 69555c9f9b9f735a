"""Upload scanning: the EICAR scanner, the scanner chain, ClamAV's INSTREAM protocol against a
live fake clamd, and the records storage refusing what a scanner reports."""

from __future__ import annotations

import io
import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation

from apps.core import scanning
from apps.core.scanning import EICAR, ClamdScanner, EicarScanner, Infected, ScanUnavailable
from apps.records.services import RecordError
from apps.records.services.documents import storage_root, store_file
from tests.core.test_settings import run_manage


def jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def pdf(extra: bytes = b"") -> bytes:
    """A one-page PDF; `extra` goes into a comment line inside it."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=72, height=72)
    out = io.BytesIO()
    writer.write(out)
    body = out.getvalue()
    return body.replace(b"\n", b"\n%" + extra + b"\n", 1) if extra else body


class RefuseEverything:
    """A scanner of the tests: every file is a threat."""

    def scan(self, content: bytes, filename: str) -> str | None:
        return "Test.Refuse-Everything"


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    # Messages are checked in English, whatever the catalogues say.
    with translation.override("en"):
        yield


def stored_files() -> list[Path]:
    root = storage_root()
    return sorted(root.iterdir()) if root.exists() else []


# ---------------------------------------------------------------------------------------------
# The EICAR scanner


def test_the_eicar_string_is_the_standard_68_bytes() -> None:
    assert len(EICAR) == 68
    assert EICAR.startswith(b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR")


@pytest.mark.parametrize(
    "content",
    [
        EICAR,
        EICAR + b"\r\n",
        EICAR + b"   \t\n\x1a",
        b"\n" + EICAR,
        jpeg() + EICAR,
        pdf(EICAR),
    ],
    ids=["plain", "crlf", "whitespace", "leading-newline", "after-jpeg", "inside-pdf"],
)
def test_eicar_is_found_wherever_it_is(content: bytes) -> None:
    assert EicarScanner().scan(content, "file.bin") == "Eicar-Test-Signature"


@pytest.mark.parametrize(
    "content", [jpeg(), pdf(), EICAR[:-1], EICAR.lower()], ids=["jpeg", "pdf", "cut", "lower"]
)
def test_clean_files_and_near_misses_pass(content: bytes) -> None:
    assert EicarScanner().scan(content, "file.bin") is None


def test_the_chain_raises_infected_with_the_threat_name() -> None:
    with pytest.raises(Infected) as found:
        scanning.scan(b"hello " + EICAR, "note.txt")
    assert found.value.name == "Eicar-Test-Signature"
    scanning.scan(b"hello", "note.txt")  # clean: no exception


def test_the_scanners_come_from_settings_and_are_built_once(settings: Any) -> None:
    settings.UPLOAD_SCANNERS = ["tests.core.test_scanning.RefuseEverything"]
    first = scanning.scanners()
    assert [type(s).__name__ for s in first] == ["RefuseEverything"]
    assert scanning.scanners()[0] is first[0]
    with pytest.raises(Infected, match="Test.Refuse-Everything"):
        scanning.scan(jpeg(), "photo.jpg")

    settings.UPLOAD_SCANNERS = []
    scanning.scan(EICAR, "eicar.com")  # no scanner configured: nothing refused


# ---------------------------------------------------------------------------------------------
# The records storage runs the scanners first


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (EICAR, "eicar.pdf"),
        (EICAR, "photo.jpg"),
        (jpeg() + EICAR, "photo.jpg"),
        (pdf(EICAR), "report.pdf"),
    ],
    ids=["renamed-pdf", "renamed-jpg", "after-jpeg-end", "inside-pdf"],
)
def test_store_file_refuses_a_threat_naming_it_and_writes_nothing(
    content: bytes, name: str
) -> None:
    with pytest.raises(RecordError) as refused:
        store_file(content, name)
    assert str(refused.value) == (
        "This file was refused: it contains a threat (Eicar-Test-Signature)."
    )
    assert stored_files() == []


def test_store_file_still_accepts_clean_files() -> None:
    stored = store_file(jpeg(), "photo.jpg")
    assert stored.content_type == "image/jpeg"
    assert len(stored_files()) == 2  # the picture and its thumbnail


# ---------------------------------------------------------------------------------------------
# ClamAV's INSTREAM protocol, against a live fake clamd


class FakeClamd(socketserver.ThreadingTCPServer):
    """Speaks clamd's `zINSTREAM`: reads the chunks, answers OK or FOUND (or `reply`)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ClamdHandler)
        self.received: list[bytes] = []
        self.commands: list[bytes] = []
        self.reply: bytes | None = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server_address[1]}"


class ClamdHandler(socketserver.StreamRequestHandler):
    server: FakeClamd

    def handle(self) -> None:
        command = b""
        while not command.endswith(b"\0"):
            command += self.rfile.read(1)
        self.server.commands.append(command)
        content = b""
        while True:
            (size,) = struct.unpack("!L", self.rfile.read(4))
            if size == 0:
                break
            content += self.rfile.read(size)
        self.server.received.append(content)
        if self.server.reply is not None:
            answer = self.server.reply
        elif EICAR in content:
            answer = b"stream: Eicar-Test-Signature FOUND"
        else:
            answer = b"stream: OK"
        self.wfile.write(answer + b"\0")


@pytest.fixture
def clamd() -> Iterator[FakeClamd]:
    server = FakeClamd()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_clamd_scanner_sends_the_whole_file_in_chunks_and_reads_ok(clamd: FakeClamd) -> None:
    content = bytes(range(256)) * 1000  # 256 kB: several INSTREAM chunks
    assert ClamdScanner(clamd.url).scan(content, "big.pdf") is None
    assert clamd.commands == [b"zINSTREAM\0"]
    assert clamd.received == [content]


def test_clamd_scanner_names_what_clamd_found(clamd: FakeClamd) -> None:
    assert ClamdScanner(clamd.url).scan(jpeg() + EICAR, "photo.jpg") == "Eicar-Test-Signature"


def test_a_clamd_error_answer_is_no_verdict(clamd: FakeClamd) -> None:
    clamd.reply = b"INSTREAM size limit exceeded. ERROR"
    with pytest.raises(ScanUnavailable):
        ClamdScanner(clamd.url).scan(b"x" * 10, "file.pdf")


def test_an_unreachable_clamd_is_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="apps.core.scanning"):
        with pytest.raises(ScanUnavailable):
            ClamdScanner(f"tcp://127.0.0.1:{free_port()}", timeout=2).scan(b"x", "file.pdf")
    assert "could not scan" in caplog.text


def test_a_silent_clamd_times_out_as_unavailable() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ScanUnavailable):
            ClamdScanner(url, timeout=0.3).scan(b"x", "file.pdf")


def test_uploads_go_through_clamd_when_configured(settings: Any, clamd: FakeClamd) -> None:
    settings.UPLOAD_SCANNERS = ["apps.core.scanning.ClamdScanner"]
    settings.CLAMD_URL = clamd.url
    picture = jpeg()

    assert store_file(picture, "photo.jpg").content_type == "image/jpeg"
    with pytest.raises(RecordError, match=r"contains a threat \(Eicar-Test-Signature\)"):
        store_file(picture + EICAR, "photo.jpg")
    assert clamd.received == [picture, picture + EICAR]


def test_uploads_are_refused_while_clamd_is_down(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # given ClamAV configured but not answering
    settings.UPLOAD_SCANNERS = [
        "apps.core.scanning.EicarScanner",
        "apps.core.scanning.ClamdScanner",
    ]
    settings.CLAMD_URL = f"tcp://127.0.0.1:{free_port()}"

    # when a clean picture is uploaded
    with caplog.at_level(logging.WARNING, logger="apps.core.scanning"):
        with pytest.raises(RecordError) as refused:
            store_file(jpeg(), "photo.jpg")

    # then it is refused (fail closed), the reason is given and logged, nothing is written
    assert str(refused.value) == (
        "This file could not be checked for viruses just now. Try again later."
    )
    assert "could not scan" in caplog.text
    assert stored_files() == []


def test_clamd_named_without_its_url_stops_start_up() -> None:
    result = run_manage("check", UPLOAD_SCANNERS="apps.core.scanning.ClamdScanner")
    assert result.returncode != 0
    assert "CLAMD_URL" in result.stderr
    result = run_manage("check", CLAMD_URL="http://clamav:3310")
    assert result.returncode != 0
    assert "CLAMD_URL" in result.stderr
