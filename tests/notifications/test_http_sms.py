"""The HTTP SMS backend against a live gateway endpoint started by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import pytest

from apps.notifications.sms import HttpSmsBackend, SmsError


class Gateway(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []
    status: ClassVar[int] = 202

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers["Content-Length"])
        Gateway.received.append(json.loads(self.rfile.read(length)))
        self.send_response(Gateway.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def gateway_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Gateway.received.clear()
    Gateway.status = 202
    yield f"http://127.0.0.1:{server.server_port}/sms"
    server.shutdown()
    server.server_close()


def test_the_message_is_posted_as_json(gateway_url: str, settings: Any) -> None:
    settings.SMS_HTTP_URL = gateway_url

    HttpSmsBackend().send("+41790000000", "Rappel de rendez-vous")

    assert Gateway.received == [{"to": "+41790000000", "text": "Rappel de rendez-vous"}]


def test_a_gateway_error_is_an_sms_error(gateway_url: str, settings: Any) -> None:
    settings.SMS_HTTP_URL = gateway_url
    Gateway.status = 500

    with pytest.raises(SmsError, match="HTTP 500"):
        HttpSmsBackend().send("+41790000000", "x")


def test_an_unreachable_gateway_is_an_sms_error(settings: Any) -> None:
    settings.SMS_HTTP_URL = "http://127.0.0.1:9/sms"

    with pytest.raises(SmsError, match="unreachable"):
        HttpSmsBackend().send("+41790000000", "x")
