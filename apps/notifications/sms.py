"""Pluggable SMS delivery. `SMS_BACKEND` names the class; the console backend is the default."""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.request
from typing import ClassVar

from django.conf import settings
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


class SmsError(Exception):
    pass


class BaseSmsBackend:
    def send(self, to: str, text: str) -> None:
        raise SmsError(f"{type(self).__name__} cannot send messages")


class ConsoleSmsBackend(BaseSmsBackend):
    """Writes messages to standard output (development)."""

    def send(self, to: str, text: str) -> None:
        sys.stdout.write(f"SMS to {to}: {text}\n")
        sys.stdout.flush()


class LocmemSmsBackend(BaseSmsBackend):
    """Keeps messages in memory (tests read `outbox`)."""

    outbox: ClassVar[list[tuple[str, str]]] = []

    def send(self, to: str, text: str) -> None:
        self.outbox.append((to, text))


class HttpSmsBackend(BaseSmsBackend):
    """POSTs `{"to": ..., "text": ...}` as JSON to `SMS_HTTP_URL` (an SMS gateway's webhook)."""

    def send(self, to: str, text: str) -> None:
        url = settings.SMS_HTTP_URL
        if not url.startswith(("http://", "https://")):
            raise SmsError("SMS_HTTP_URL must be an http(s) URL")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            data=json.dumps({"to": to, "text": text}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                if response.status >= 300:
                    raise SmsError(f"gateway answered HTTP {response.status}")
        except urllib.error.HTTPError as error:
            raise SmsError(f"gateway answered HTTP {error.code}") from error
        except OSError as error:
            raise SmsError(f"gateway unreachable: {error}") from error


def get_sms_backend() -> BaseSmsBackend:
    backend_class = import_string(settings.SMS_BACKEND)
    return backend_class()
