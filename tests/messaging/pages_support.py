"""Helpers of the messaging page tests (test_pages_*.py, test_xss.py)."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent, Outcome
from tests.conftest import verified_client


def open_all_day(settings: Any) -> None:
    settings.MESSAGING_OPENING_HOURS = (frozenset(range(1, 8)), dt.time(0, 0), dt.time(23, 59, 59))


def closed_today(settings: Any) -> None:
    """The team reads messages every day but today: whatever is sent now gets the automatic
    reply."""
    today = timezone.localdate().isoweekday()
    days = frozenset(day for day in range(1, 8) if day != today)
    settings.MESSAGING_OPENING_HOURS = (days, dt.time(0, 0), dt.time(23, 59, 59))


def client_for(user: User) -> Client:
    """A signed-in client (second factor passed) reading the pages in English."""
    client = verified_client(user)
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def jpeg_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 80, 60)).save(out, "JPEG")
    return out.getvalue()


def pdf_bytes() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def upload(name: str, content: bytes, content_type: str = "image/jpeg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type=content_type)


def denials(user: User) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(actor_id=user.pk, outcome=Outcome.DENIED))
