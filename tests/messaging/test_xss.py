"""Stored XSS: what patients and staff type (bodies, subjects) and the names of the files they
send is shown as text on every page and fragment; only web addresses become links, and those
open apart without telling the linked site where they came from."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from apps.accounts.models import User
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Attachment, Message, Thread
from apps.messaging.services.threads import do_post_message
from apps.messaging.templatetags.messaging import message_body

from .pages_support import client_for, jpeg_bytes, open_all_day, pdf_bytes, upload

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    '<a href="javascript:alert(1)">clic</a>',
    "<svg onload=alert(1)>",
    'http://example.com/" onmouseover="alert(1)',
]


class _Elements(HTMLParser):
    """Every element of a page with its attributes, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))


@pytest.fixture(autouse=True)
def _pages(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    open_all_day(settings)


def assert_inert(html: str) -> None:
    """No element or attribute of the page comes from a payload."""
    parser = _Elements()
    parser.feed(html)
    for tag, attrs in parser.elements:
        assert tag not in ("svg", "iframe", "object", "embed"), tag
        assert not (tag == "script" and not attrs.get("src")), "inline script"
        assert not (tag == "img" and attrs.get("src") == "x"), "injected image"
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert not value.strip().lower().startswith("javascript:"), (tag, name, value)


@pytest.mark.parametrize("payload", [p for p in PAYLOADS if p.startswith(("<", '"'))])
def test_the_check_sees_live_markup(payload: str) -> None:
    with pytest.raises(AssertionError):
        assert_inert(payload if not payload.startswith("http") else f'<a href="{payload}">')


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_body_filter_escapes(payload: str) -> None:
    assert_inert(str(message_body(payload)))


def test_links_are_safe_and_line_breaks_kept() -> None:
    html = str(message_body("Voir https://example.com/page?a=1&b=2\nwww.hug.ch et a@b.ch\r\nfin"))
    assert (
        '<a href="https://example.com/page?a=1&amp;b=2" rel="noopener noreferrer nofollow" '
        'target="_blank">https://example.com/page?a=1&amp;b=2</a>'
    ) in html
    assert 'href="http://www.hug.ch" rel="noopener noreferrer nofollow" target="_blank"' in html
    assert html.count("<br>") == 2
    assert "javascript:alert(1)" == str(message_body("javascript:alert(1)"))


def test_payloads_in_bodies_subjects_and_file_names_render_inert(
    patient: User, clinician: User, make_thread: Callable[..., Thread]
) -> None:
    # given: every payload as the subject, the bodies, and the names of the files
    payload = "\n".join(PAYLOADS)
    thread = make_thread(
        subject=PAYLOADS[1] + PAYLOADS[0],
        body=payload,
        files=[
            upload('"><img src=x onerror=alert(1)>.jpg', jpeg_bytes()),
            upload("<script>alert(1)</script>.pdf", pdf_bytes(), "application/pdf"),
        ],
    )
    answer = do_post_message(ThreadAccess(thread, clinician), body=payload)
    assert Attachment.objects.filter(message__thread=thread).count() == 2
    patient_client, staff_client = client_for(patient), client_for(clinician)
    # when: every page and fragment that shows them
    pages = [
        patient_client.get("/messages/"),
        patient_client.get(f"/messages/{thread.pk}/"),
        patient_client.get(f"/messages/message/{answer.pk}/"),
        patient_client.get(f"/messages/{thread.pk}/row/"),
        patient_client.get(f"/messages/{thread.pk}/status/"),
        staff_client.get("/clinic/messages/"),
        staff_client.get(f"/clinic/messages/{thread.pk}/"),
        staff_client.get(f"/messages/message/{answer.pk}/"),
        staff_client.get(f"/messages/{thread.pk}/row/"),
        staff_client.get(f"/clinic/patients/{thread.patient_id}/messages/"),
        staff_client.post(
            f"/messages/{thread.pk}/reply/",
            {"body": payload},
            headers={"X-Requested-With": "fetch"},
        ),
    ]
    # then
    for response in pages:
        assert response.status_code in (200, 201)
        html = response.content.decode()
        assert_inert(html)
    thread_page = pages[6].content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in thread_page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in thread_page


def test_a_file_name_with_markup_is_escaped_in_the_download_header(
    patient: User, make_thread: Callable[..., Thread]
) -> None:
    make_thread(files=[upload('a"; filename="evil.pdf', pdf_bytes(), "application/pdf")])
    item = Attachment.objects.get()
    response = client_for(patient).get(f"/messages/files/{item.pk}/")
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment")
    assert 'filename="evil.pdf"' not in disposition and "\n" not in disposition
    assert response["Content-Type"] == "application/pdf"


def test_errors_echoing_typed_text_are_escaped(patient: User, record: Any) -> None:
    response = client_for(patient).post(
        "/messages/new/",
        {
            "topic": "question",
            "subject": PAYLOADS[1],
            "body": PAYLOADS[0],
            "attachments": [upload("<img src=x onerror=alert(1)>.jpg", b"not an image")],
        },
    )
    assert response.status_code == 400
    assert_inert(response.content.decode())
    assert not Message.objects.exists()
