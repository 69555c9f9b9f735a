"""A real video consultation: two headless Chromium contexts (patient and clinician) with fake
cameras meet through the waiting room of a live ASGI server, see each other in HD, share and
annotate a screen, record with both consents; a third, unauthorised browser is refused.

WebRTC media flow browser to browser on the loopback; signalling goes through the real
consumer (daphne + channels-redis); the JSON endpoints and the database are the real ones.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from apps.accounts.models import Organization, Role, User
from apps.records.models import ClinicalNote, DocumentReference, Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.scheduling.models import Appointment, AppointmentType, Participant
from apps.teleconsult.models import ChatMessage, Consultation, Recording
from tests.conftest import signed_in_client, verified_client
from tests.e2e.asgi_server import AsgiServer, asgi_server  # noqa: F401 - the fixture
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, PHONE, check_accessibility

pytestmark = pytest.mark.e2e

# Fake camera and microphone, permission prompts answered yes, "Entire screen" picked for
# getDisplayMedia, and sound allowed to play without a click (the remote <audio>).
MEDIA_ARGS = [
    *CHROMIUM_ARGS,
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--auto-select-desktop-capture-source=Entire screen",
    "--autoplay-policy=no-user-gesture-required",
]
LIVE = 15_000  # ms, for a live change to show; normally well under a second
HD_DEADLINE = 20.0  # s, for the receiving side to decode 1280×720 frames

INBOUND_VIDEO = """async () => {
  const found = [];
  for (const [key, pc] of window.vhConsult.peers) {
    const report = await pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "video") {
        found.push({key, framesDecoded: s.framesDecoded || 0,
                    frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0});
      }
    });
  }
  return found;
}"""

PAINTED_PIXELS = """() => {
  const canvas = document.querySelector("[data-annotation-canvas]");
  if (!canvas.width || !canvas.height) return 0;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
  return painted;
}"""

SOCKET_OPENS = """(path) => new Promise((resolve) => {
  const socket = new WebSocket(`ws://${location.host}${path}`);
  socket.onopen = () => resolve({opened: true});
  socket.onclose = (event) => resolve({opened: false, code: event.code});
  setTimeout(() => resolve({opened: null}), 8000);
})"""


@pytest.fixture
def media_browser(browser: Browser) -> Iterator[Browser]:
    """A second Chromium with fake media devices, driven by the session's Playwright."""
    launched = browser.browser_type.launch(executable_path=CHROMIUM, args=MEDIA_ARGS)
    yield launched
    launched.close()


def new_context(browser: Browser, server: AsgiServer, user: User) -> BrowserContext:
    phone = ViewportSize(width=PHONE["width"], height=PHONE["height"])
    context = browser.new_context(base_url=server.url, viewport=phone)
    context.set_default_timeout(LIVE)
    client = verified_client(user) if user.is_staff_member else signed_in_client(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    context.add_cookies(
        [
            {"name": cookie.key, "value": cookie.value, "url": server.url},
            {"name": settings.LANGUAGE_COOKIE_NAME, "value": "en", "url": server.url},
        ]
    )
    return context


def watched_page(context: BrowserContext, errors: list[str]) -> Page:
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    return page


def eventually(check: Callable[[], Any], deadline_s: float) -> Any:
    """`check()` until it returns something true, or None after the deadline."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)  # polling with a deadline
    return None


def poll(what: str, check: Callable[[], Any], deadline_s: float = HD_DEADLINE) -> Any:
    """`check()` until it returns something true, or fail after the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {deadline_s} s"
        time.sleep(0.1)  # polling with a deadline


@pytest.fixture
def cast(make_user: Callable[..., User], organization: Organization) -> dict[str, Any]:
    """A physician and their patient with a video appointment starting now; an outsider."""
    physician = make_user(
        Role.PHYSICIAN, organization=organization, first_name="Claire", last_name="Rochat"
    )
    outsider = make_user(Role.PHYSICIAN, organization=organization, last_name="Outsider")
    person = make_user(Role.PATIENT, first_name="Paul", last_name="Meylan")
    chart = Patient.objects.create(
        user=person,
        family_name="Meylan",
        given_names="Paul",
        birth_date=dt.date(1961, 5, 17),
        sex="male",
        organization=organization,
    )
    do_add_member(default_team(chart), physician)
    kind = AppointmentType.objects.create(
        code="video",
        name="Téléconsultation",
        name_en="Video visit",
        minutes=20,
        mode="video",
        professions=[Role.PHYSICIAN],
    )
    starts = timezone.now() + dt.timedelta(minutes=5)
    ends = starts + dt.timedelta(minutes=20)
    appointment = Appointment.objects.create(
        patient=chart, type=kind, starts_at=starts, ends_at=ends, mode="video", reason="Knee"
    )
    Participant.objects.create(
        appointment=appointment, user=physician, starts_at=starts, ends_at=ends
    )
    return {
        "physician": physician,
        "outsider": outsider,
        "patient": person,
        "chart": chart,
        "appointment": appointment,
    }


def inbound(page: Page) -> list[dict[str, Any]]:
    return page.evaluate(INBOUND_VIDEO)


def decoding(page: Page) -> bool:
    return any(s["framesDecoded"] > 0 for s in inbound(page))


def in_hd(page: Page) -> list[dict[str, Any]]:
    return [
        s
        for s in inbound(page)
        if s["framesDecoded"] > 0 and s["frameWidth"] == 1280 and s["frameHeight"] == 720
    ]


def test_a_video_consultation_between_two_browsers(
    media_browser: Browser,
    asgi_server: AsgiServer,  # noqa: F811
    cast: dict[str, Any],
) -> None:
    errors: list[str] = []
    physician, person = cast["physician"], cast["patient"]
    appointment: Appointment = cast["appointment"]
    patient_context = new_context(media_browser, asgi_server, person)
    doctor_context = new_context(media_browser, asgi_server, physician)
    patient = watched_page(patient_context, errors)
    doctor = watched_page(doctor_context, errors)
    doctor.on("dialog", lambda dialog: dialog.accept())

    # Before the call: the patient checks camera, microphone and connection.
    patient.goto(f"/consult/check/?next=/consult/appointment/{appointment.pk}/")
    checks = patient.locator("[data-device-check]")
    expect(checks).to_have_attribute("data-check-state", "done", timeout=LIVE)
    for name in ("camera", "microphone", "server", "webrtc"):
        expect(patient.locator(f'[data-check="{name}"]')).to_have_attribute("data-result", "pass")
    expect(patient.locator('[data-check="camera"]')).to_contain_text("1280×720")
    check_accessibility(patient)

    # The clinician watches their list of video consultations.
    doctor.goto("/clinic/consultations/")
    expect(doctor.locator("body")).to_have_attribute("data-realtime", "connected")
    check_accessibility(doctor)

    # The patient goes from the appointment to the waiting room.
    patient.goto(f"/appointments/{appointment.pk}/")
    patient.get_by_role("button", name="Join the video consultation").click()
    expect(patient).to_have_url(re.compile(r"/consult/[\w-]+/$"))
    room = Consultation.objects.get(appointment=appointment).room
    main = patient.locator("main")
    expect(main).to_have_attribute("data-call-state", "waiting")
    expect(patient.locator("[data-waiting-room]")).to_contain_text("You are in the waiting room")
    check_accessibility(patient)

    # The clinician's list shows them waiting, live; the clinician opens the room.
    row = doctor.locator(f'[data-room="{room}"]')
    expect(row.locator("[data-waiting-count]")).to_have_text("1", timeout=LIVE)
    expect(row.locator("[data-waiting-badge]")).to_be_visible()
    row.get_by_role("button", name="Open the room").click()
    expect(doctor.locator("main")).to_have_attribute("data-call-state", "admitted")
    admit = doctor.locator(f'[data-admit="u{person.pk}"]')
    expect(admit).to_be_visible()

    # An outsider clinician gets no page and no socket.
    outsider_context = new_context(media_browser, asgi_server, cast["outsider"])
    outsider = outsider_context.new_page()
    response = outsider.goto(f"/consult/{room}/")
    assert response is not None and response.status == 404
    refused = outsider.evaluate(SOCKET_OPENS, f"/ws/consult/{room}/")
    assert refused["opened"] is False, refused
    outsider_context.close()
    expect(doctor.locator("[data-waiting-list] li")).to_have_count(1)

    # Admit: both see and hear each other, in HD.
    admitted_at = time.monotonic()
    admit.click()
    poll("the patient decodes the clinician's video", lambda: decoding(patient))
    first_frame = time.monotonic() - admitted_at
    took = f"{first_frame * 1000:.0f} ms"
    print(f"\nadmit → first decoded frame on the patient's side: {took}")  # noqa: T201
    poll("the clinician decodes the patient's video", lambda: decoding(doctor))
    expect(main).to_have_attribute("data-call-state", "in-call")
    expect(doctor.locator("main")).to_have_attribute("data-call-state", "in-call")
    hd_patient = poll("1280×720 at the patient's", lambda: in_hd(patient))
    hd_doctor = poll("1280×720 at the clinician's", lambda: in_hd(doctor))
    print(f"received in HD: patient {hd_patient}, clinician {hd_doctor}")  # noqa: T201
    sender = doctor.evaluate(
        """() => { const [pc] = window.vhConsult.peers.values();
        const s = pc.getSenders().find((x) => x.track && x.track.kind === "video");
        return {hint: s.track.contentHint, pref: s.getParameters().degradationPreference}; }"""
    )
    assert sender["hint"] == "detail"
    expect(doctor.locator("[data-quality]")).to_be_visible(timeout=LIVE)
    expect(doctor.locator("[data-quality-text]")).to_contain_text("Connection:")
    consultation = Consultation.objects.get(room=room)
    assert consultation.status == Consultation.Status.LIVE and consultation.encounter is not None

    # Chat, both ways.
    patient.locator("#chat-text").fill("Hello doctor, my knee is better.")
    patient.locator("[data-chat-form] button[type=submit]").click()
    expect(doctor.locator("[data-chat-log]")).to_contain_text("my knee is better", timeout=LIVE)
    assert ChatMessage.objects.filter(consultation=consultation).count() == 1

    # The clinician shares their screen; the patient sees it.
    doctor.locator('[data-action="share"]').click()
    shared = eventually(lambda: doctor.evaluate("Boolean(window.vhConsult.screenStream)"), 5)
    if not shared:
        # Headless without a screen to capture: share a drawn canvas through the same path.
        doctor.evaluate(
            """() => { const c = document.createElement("canvas"); c.width = 1280; c.height = 720;
            const x = c.getContext("2d"); let n = 0;
            const paint = () => {
              x.fillStyle = n++ % 2 ? "#246" : "#468";
              x.fillRect(0, 0, 1280, 720);
            };
            setInterval(paint, 100);
            window.vhConsult.shareStream(c.captureStream(10)); }"""
        )
    print(f"screen share through getDisplayMedia: {bool(shared)}")  # noqa: T201
    expect(patient.locator("[data-screen-tile]")).to_be_visible(timeout=LIVE)
    poll(
        "the patient decodes the shared screen",
        lambda: patient.evaluate("document.querySelector('[data-screen-video]').videoWidth > 0"),
    )

    # The clinician annotates it with the pen; the stroke reaches the patient's canvas.
    doctor.locator('[data-tool="pen"]').click()
    doctor.locator("[data-annotation-canvas]").scroll_into_view_if_needed()
    box = doctor.locator("[data-annotation-canvas]").bounding_box()
    assert box is not None
    doctor.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    doctor.mouse.down()
    for step in range(1, 11):
        doctor.mouse.move(
            box["x"] + box["width"] * (0.3 + step * 0.04), box["y"] + box["height"] * 0.5
        )
    doctor.mouse.up()
    stroke = poll(
        "the annotation reaches the patient",
        lambda: patient.evaluate("window.vhConsult.annotations.filter((a) => a.tool === 'pen')"),
        10,
    )
    assert len(stroke[0]["points"]) >= 5
    assert all(0 <= x <= 1 and 0 <= y <= 1 for x, y in stroke[0]["points"])
    assert poll("the stroke is drawn", lambda: patient.evaluate(PAINTED_PIXELS), 5) > 50

    # The call pages, in full use, are accessible at 360 px too.
    check_accessibility(patient)
    check_accessibility(doctor)

    # An annotated snapshot goes to the record, linked to the encounter.
    doctor.locator("[data-snapshot]").click()
    expect(doctor.locator("[data-status]")).to_contain_text("saved in the record", timeout=LIVE)
    snapshot = DocumentReference.objects.get(patient=cast["chart"])
    assert snapshot.encounter_id == consultation.encounter_id

    # Recording: impossible until both consent.
    record = doctor.locator("[data-record]")
    expect(record).to_be_disabled()
    doctor.locator("[data-consent-toggle]").click()
    expect(doctor.locator('[data-consent="clinician"]')).to_have_text("agrees")
    expect(record).to_be_disabled()
    expect(patient.locator('[data-consent="clinician"]')).to_have_text("agrees", timeout=LIVE)
    patient.locator("[data-consent-toggle]").click()
    expect(record).to_be_enabled(timeout=LIVE)
    record.click()
    expect(patient.locator("[data-recording-flag]")).to_be_visible(timeout=LIVE)
    poll(
        "a first recording chunk is stored",
        lambda: Recording.objects.filter(consultation=consultation, chunks__gte=1).exists(),
    )
    record.click()
    done = poll(
        "the recording is complete",
        lambda: Recording.objects.filter(
            consultation=consultation, status=Recording.Status.COMPLETE
        ).first(),
    )
    assert done.size > 0 and done.chunks >= 1
    expect(patient.locator("[data-recording-flag]")).to_be_hidden(timeout=LIVE)

    # The note, from the call screen.
    doctor.locator("#note-text").fill("Knee pain improving. Continue physiotherapy.")
    doctor.locator("[data-note-panel] button[type=submit]").click()
    expect(doctor.locator("[data-note-saved]")).to_be_visible(timeout=LIVE)
    note = ClinicalNote.objects.get(patient=cast["chart"])
    assert note.encounter_id == consultation.encounter_id

    # The clinician ends the call: the patient is told, the summary shows the call.
    doctor.locator("[data-end-form] button").click()
    expect(doctor).to_have_url(re.compile(rf"/consult/{room}/summary/$"))
    expect(main).to_have_attribute("data-call-state", "ended", timeout=LIVE)
    expect(patient.locator("[data-ended]")).to_contain_text("ended")
    expect(doctor.locator("[data-transcript]")).to_contain_text("my knee is better")
    expect(doctor.locator(f'[data-recording="{done.pk}"]')).to_be_visible()
    consultation.refresh_from_db()
    assert consultation.status == Consultation.Status.ENDED
    assert consultation.encounter is not None and consultation.encounter.ended_at is not None

    patient_context.close()
    doctor_context.close()
    assert not errors, f"uncaught JavaScript errors: {errors}"
