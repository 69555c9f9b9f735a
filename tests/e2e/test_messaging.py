"""Secure messaging in two browsers at once: a patient sends a wound photo from their phone, the
physician's open inbox shows the conversation without a reload, they open it, see the photo,
file it into the record with one click, and answer; the patient's open page shows the read
receipt and the answer live. Every page passes axe-core and fits a 360 px screen.

Runs against a real daphne (tests/e2e/asgi_server.py) so that the WebSockets work.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    FilePayload,
    expect,
)

from apps.accounts.models import Organization, Role, User
from apps.messaging.models import Attachment, Thread
from apps.records.models import DocumentReference, Patient
from apps.records.services.care_team import default_team, do_add_member
from tests.e2e.asgi_server import asgi_server  # noqa: F401 - the fixture
from tests.e2e.conftest import Browsers, check_accessibility

pytestmark = pytest.mark.e2e

LIVE = 10_000  # ms: generous for CI; an event normally shows within a second


@pytest.fixture(autouse=True)
def _server_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Any) -> None:
    """The server process (started after this) and the test share the stored files; the team
    is always open, so no automatic reply depends on the hour the test runs."""
    media = tmp_path / "media"
    monkeypatch.setenv("MEDIA_ROOT", str(media))
    monkeypatch.setenv("MESSAGING_OPENING_HOURS", "1-7 00:00-23:59")
    settings.MEDIA_ROOT = media
    settings.MESSAGING_OPENING_HOURS = (frozenset(range(1, 8)), dt.time(0, 0), dt.time(23, 59))


def _jpeg() -> bytes:
    """A real photo-sized JPEG, as a phone camera would send (before the server shrinks it)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 480), (230, 190, 170))
    ImageDraw.Draw(image).ellipse((220, 160, 420, 320), fill=(170, 40, 40))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def test_patient_photo_reaches_the_open_inbox_and_is_filed_into_the_record(
    browsers: Browsers, make_user: Callable[..., User], organization: Organization
) -> None:
    # given a patient with a portal account and their physician, on the care team
    physician = make_user(
        Role.PHYSICIAN, organization=organization, first_name="Anna", last_name="Keller"
    )
    patient = make_user(Role.PATIENT, first_name="Lise", last_name="Monnier")
    chart = Patient.objects.create(
        user=patient,
        family_name="Monnier",
        given_names="Lise",
        birth_date=dt.date(1956, 4, 2),
        sex="female",
        organization=organization,
    )
    do_add_member(default_team(chart), physician, is_lead=True)

    # and the physician's inbox is open
    clinic = browsers.page_for(physician)
    clinic.goto("/clinic/messages/")
    inbox = clinic.locator("[data-inbox]")
    expect(inbox.locator("[data-empty]")).to_be_visible()
    expect(clinic.locator("body")).to_have_attribute("data-realtime", "connected")
    clinic.evaluate("window.__sameDocument = true")
    check_accessibility(clinic)

    # when the patient starts a conversation with a photo taken with the phone's camera
    portal = browsers.page_for(patient)
    portal.goto("/messages/")
    check_accessibility(portal)
    portal.get_by_role("button", name="New conversation").click()
    expect(portal).to_have_url(re.compile(r"/messages/new/$"))
    check_accessibility(portal)
    portal.get_by_label("Topic").select_option("wound")
    portal.get_by_label("Subject").fill("Ma cicatrice")
    portal.get_by_label("Message", exact=True).fill("Elle est rouge et chaude depuis hier soir.")
    portal.locator("input[name=photo]").set_input_files(
        files=[FilePayload(name="plaie.jpg", mimeType="image/jpeg", buffer=_jpeg())]
    )
    portal.get_by_role("button", name="Send").click()

    # then their conversation shows the photo, the expected answer time and the emergency line
    expect(portal).to_have_url(re.compile(r"/messages/\d+/$"))
    thread = Thread.objects.get(patient=chart)
    photo = Attachment.objects.get(message__thread=thread)
    thumb = portal.locator(f'img.msg-thumb[src="/messages/files/{photo.pk}/?thumb=1"]')
    expect(thumb).to_be_visible()
    assert portal.evaluate("(img) => img.naturalWidth", thumb.element_handle()) > 0
    expect(portal.locator("#thread-status")).to_contain_text("The care team will answer by")
    expect(portal.locator("#thread-status")).to_contain_text("not read by the care team yet")
    expect(portal.locator(".emergency-line")).to_contain_text("In an emergency call 144")
    expect(portal.locator("[data-conversation]")).to_have_attribute("data-live", "connected")
    portal.evaluate("window.__sameDocument = true")
    check_accessibility(portal)

    # and the physician's open inbox shows it without a reload, unread, with the badge
    row = inbox.locator(f"#thread-{thread.pk}")
    expect(row).to_contain_text("Ma cicatrice", timeout=LIVE)
    expect(row).to_contain_text("Lise Monnier")
    expect(row).to_contain_text("Unread")
    expect(row).to_contain_text("Awaiting answer")
    expect(clinic.locator("[data-messaging-count]")).to_have_text("1", timeout=LIVE)
    assert clinic.evaluate("window.__sameDocument") is True
    check_accessibility(clinic)

    # when the physician opens it
    row.get_by_role("link").click()
    expect(clinic).to_have_url(re.compile(rf"/clinic/messages/{thread.pk}/$"))
    clinic_thumb = clinic.locator("img.msg-thumb")
    expect(clinic_thumb).to_be_visible()
    assert clinic.evaluate("(img) => img.naturalWidth", clinic_thumb.element_handle()) > 0
    check_accessibility(clinic)

    # then the patient's open page shows that the team has read it, live
    expect(portal.locator("#thread-status")).to_contain_text(
        "Read by the care team at", timeout=LIVE
    )

    # when the physician files the photo into the record with one click
    clinic.get_by_role("button", name="File into record (plaie.jpg)").click()

    # then the page says so and links to the documents, where the photo is
    expect(clinic.locator(".msg-filed")).to_contain_text("Filed in the record")
    document = DocumentReference.objects.get(patient=chart)
    assert document.category == DocumentReference.Category.PHOTO
    clinic.locator(".msg-filed a").click()
    expect(clinic).to_have_url(re.compile(rf"/clinic/patients/{chart.pk}/documents/$"))
    expect(clinic.locator("main table")).to_contain_text("plaie.jpg")
    expect(clinic.locator(f'img[src="/documents/{document.pk}/thumbnail/"]')).to_be_visible()

    # when they answer from the conversation page
    clinic.goto(f"/clinic/messages/{thread.pk}/")
    expect(clinic.locator("[data-conversation]")).to_have_attribute("data-live", "connected")
    clinic.get_by_label("Message", exact=True).fill(
        "Merci. Passez demain à 10 h, voir https://example.org/plaies"
    )
    clinic.get_by_role("button", name="Send").click()
    expect(clinic.locator(".msg-own").last).to_contain_text("Passez demain à 10 h")

    # then the answer appears on the patient's open page, with its link opening apart
    answer = portal.locator(".msg-other").last
    expect(answer).to_contain_text("Passez demain à 10 h", timeout=LIVE)
    link = answer.get_by_role("link", name="https://example.org/plaies")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(link).to_have_attribute("target", "_blank")
    assert portal.evaluate("window.__sameDocument") is True
    check_accessibility(portal)

    # and the physician's other pages are accessible too: triage actions and the chart's list
    clinic.get_by_role("button", name="Mark as urgent").click()
    expect(clinic.locator(".thread-header")).to_contain_text("Urgent")
    check_accessibility(clinic)
    clinic.goto(f"/clinic/patients/{chart.pk}/messages/")
    expect(clinic.locator(f"#thread-{thread.pk}")).to_contain_text("Ma cicatrice")
    check_accessibility(clinic)


def test_a_refused_file_keeps_what_was_typed(
    browsers: Browsers, make_user: Callable[..., User], organization: Organization
) -> None:
    # given a patient with a record
    patient = make_user(Role.PATIENT, first_name="Paul", last_name="Rochat")
    Patient.objects.create(
        user=patient,
        family_name="Rochat",
        given_names="Paul",
        birth_date=dt.date(1970, 1, 5),
        sex="male",
        organization=organization,
    )
    portal = browsers.page_for(patient)
    portal.goto("/messages/new/")

    # when they send a file that is not a picture nor a PDF
    portal.get_by_label("Topic").select_option("question")
    portal.get_by_label("Subject").fill("Mon traitement")
    portal.get_by_label("Message", exact=True).fill("Texte que je ne veux pas retaper.")
    portal.locator("input[name=attachments]").set_input_files(
        files=[FilePayload(name="note.jpg", mimeType="image/jpeg", buffer=b"not a picture")]
    )
    portal.get_by_role("button", name="Send").click()

    # then the error names the file and the text is still there
    expect(portal.locator("[role=alert]").first).to_contain_text("note.jpg")
    expect(portal.get_by_label("Subject")).to_have_value("Mon traitement")
    expect(portal.get_by_label("Message", exact=True)).to_have_value(
        "Texte que je ne veux pas retaper."
    )
    assert not Thread.objects.exists()
    check_accessibility(portal)
