"""The pages of video consultations (apps/teleconsult/views*.py): who gets them, what they
change, and a constant number of queries each. The call itself is tested in the browser
(tests/e2e/test_teleconsult.py)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.audit.models import Action, AuditEvent
from apps.records.models import ClinicalNote, Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.records.services.clinical import signature_is_valid
from apps.scheduling.models import Appointment, AppointmentType, Participant
from apps.teleconsult.models import Attendance, ChatMessage, Consultation, RecordingConsent
from apps.teleconsult.services.guests import do_invite
from apps.teleconsult.services.rooms import (
    GUEST_SESSION_KEY,
    arrive,
    call_connected,
    do_admit,
    do_end_call,
    get_room_for_user,
    leave,
    room_for_appointment,
)
from tests.conftest import signed_in_client, verified_client
from tests.scheduling.conftest import *  # noqa: F403 - the record and scheduling cast

# ---------------------------------------------------------------------------------------------
# Cast: a video appointment happening now between `patient` and `clinician`


def english(client: Client) -> Client:
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def client_for(user: User) -> Client:
    """Signed in as a person would be: staff with their second factor."""
    return english(verified_client(user) if user.is_staff_member else signed_in_client(user))


def make_video_appointment(
    record: Patient,
    kind: AppointmentType,
    clinician: User,
    *,
    starts: dt.datetime | None = None,
    mode: str = "video",
) -> Appointment:
    starts = starts or timezone.now() - dt.timedelta(minutes=2)
    ends = starts + dt.timedelta(minutes=kind.minutes)
    appointment = Appointment.objects.create(
        patient=record, type=kind, starts_at=starts, ends_at=ends, mode=mode
    )
    Participant.objects.create(
        appointment=appointment, user=clinician, starts_at=starts, ends_at=ends
    )
    return appointment


@pytest.fixture
def appointment(record: Patient, video_visit: AppointmentType, clinician: User) -> Appointment:
    return make_video_appointment(record, video_visit, clinician)


@pytest.fixture
def room(appointment: Appointment) -> Consultation:
    return room_for_appointment(appointment)


@pytest.fixture
def teammate(make_user: Callable[..., User], organization: Organization, record: Patient) -> User:
    """A nurse on the patient's care team who takes no part in the appointment."""
    user = make_user(Role.NURSE, email="teammate@example.test", organization=organization)
    do_add_member(default_team(record), user)
    return user


def started(room: Consultation, clinician: User, patient: User) -> Consultation:
    """Both in the call, as the signalling consumer makes it: arrived, admitted, connected."""
    doctor = get_room_for_user(clinician, room.room, action=None)
    arrive(doctor)
    arrive(get_room_for_user(patient, room.room, action=None))
    do_admit(doctor, f"u{patient.pk}")
    call_connected(room, clinician)
    room.refresh_from_db()
    return room


def ended(room: Consultation, clinician: User) -> Consultation:
    do_end_call(get_room_for_user(clinician, room.room, action=None))
    room.refresh_from_db()
    return room


def denied_for(user: User) -> bool:
    return AuditEvent.objects.filter(action=Action.DENIED, actor_id=user.pk).exists()


def queries(client: Client, method: str, url: str, **data: Any) -> tuple[int, Any]:
    """The queries of one request (a GET is made once before: the session's own writes, at most
    every 30 s, are not the page's)."""
    if method == "get":
        client.get(url, data)
    extra = {"HTTP_HX_REQUEST": "true"} if method == "post" else {}
    with CaptureQueriesContext(connection) as captured:
        response = getattr(client, method)(url, data, **extra)
    return len(captured), response


def config_of(response: Any) -> dict[str, Any]:
    found = re.search(
        r'<script id="consult-config" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert found, "the call page carries its configuration"
    return json.loads(found.group(1))


# ---------------------------------------------------------------------------------------------
# Device check


def test_device_check_is_for_anyone_signed_in_or_holding_a_guest_link(
    room: Consultation, patient: User, clinician: User
) -> None:
    # given the page's address with somewhere to go on, and one to elsewhere
    url = "/consult/check/?next=/consult/" + room.room + "/"
    for client in (client_for(patient), client_for(clinician)):
        # when they open it
        response = client.get(url)
        # then it shows the checks and the way on to the room
        assert response.status_code == 200
        assert b'data-check="camera"' in response.content
        assert b'data-check="webrtc"' in response.content
        assert f'href="/consult/{room.room}/"'.encode() in response.content
    # never a way on to another site
    for elsewhere in ("https://evil.test/", "//evil.test/", "/consult/../admin/"):
        page = client_for(patient).get("/consult/check/", {"next": elsewhere}).content.decode()
        assert "Continue to the waiting room" not in page


def test_device_check_sends_strangers_to_the_login(room: Consultation) -> None:
    response = Client().get("/consult/check/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_device_check_has_a_constant_number_of_queries(patient: User, clinician: User) -> None:
    counts = {
        queries(client_for(user), "get", "/consult/check/")[0] for user in (patient, clinician)
    }
    assert max(counts) <= 8


# ---------------------------------------------------------------------------------------------
# From the appointment to its room


def test_patient_joins_from_the_appointment_and_one_room_serves_every_visit(
    appointment: Appointment, patient: User, clinician: User
) -> None:
    # when the patient and then the clinician follow the appointment's link, twice each
    urls = set()
    for user in (patient, patient, clinician, clinician):
        response = client_for(user).get(f"/consult/appointment/{appointment.pk}/")
        assert response.status_code == 302
        urls.add(response["Location"])
    # then there is one room, and everybody is sent to it
    room = Consultation.objects.get()
    assert room.appointment == appointment
    assert urls == {f"/consult/{room.room}/"}


@pytest.mark.parametrize("who", ["patient2", "outsider", "teammate"])
def test_outsiders_cannot_join_from_the_appointment(
    appointment: Appointment, who: str, request: pytest.FixtureRequest
) -> None:
    # given someone who is not the patient nor a clinician taking part
    user: User = request.getfixturevalue(who)
    # when they try the appointment's link
    response = client_for(user).get(f"/consult/appointment/{appointment.pk}/")
    # then it does not exist for them, and that is recorded
    assert response.status_code == 404
    assert denied_for(user)


def test_anonymous_visitors_are_sent_to_the_login(appointment: Appointment) -> None:
    response = Client().get(f"/consult/appointment/{appointment.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_too_early_the_patient_is_told_when_the_waiting_room_opens(
    record: Patient, video_visit: AppointmentType, clinician: User, patient: User
) -> None:
    # given a video appointment in two hours
    later = make_video_appointment(
        record, video_visit, clinician, starts=timezone.now() + dt.timedelta(hours=2)
    )
    client = client_for(patient)
    # when the patient follows the link now
    response = client.get(f"/consult/appointment/{later.pk}/", follow=True)
    # then they are back on the appointment, told the opening time
    opens = timezone.localtime(later.starts_at - dt.timedelta(minutes=30))
    assert response.redirect_chain[-1][0] == f"/appointments/{later.pk}/"
    assert f"The waiting room opens at {opens:%H:%M}." in response.content.decode()


def test_an_appointment_in_person_has_no_room(
    record: Patient, consultation: AppointmentType, clinician: User, patient: User
) -> None:
    in_person = make_video_appointment(record, consultation, clinician, mode="in_person")
    response = client_for(patient).get(f"/consult/appointment/{in_person.pk}/")
    assert response.status_code == 302 and response["Location"] == f"/appointments/{in_person.pk}/"
    assert not Consultation.objects.exists()


def test_the_appointment_page_offers_the_video_consultation(
    record: Patient,
    video_visit: AppointmentType,
    appointment: Appointment,
    clinician: User,
    patient: User,
) -> None:
    # given the appointment now, and another in two hours
    later = make_video_appointment(
        record, video_visit, clinician, starts=timezone.now() + dt.timedelta(hours=2)
    )
    client = client_for(patient)
    # then the current one has the button; the later one says when it opens
    now_page = client.get(f"/appointments/{appointment.pk}/").content.decode()
    assert f'href="/consult/appointment/{appointment.pk}/"' in now_page
    assert "Join the video consultation" in now_page
    later_page = client.get(f"/appointments/{later.pk}/").content.decode()
    opens = timezone.localtime(later.starts_at - dt.timedelta(minutes=30))
    assert "Join the video consultation" not in later_page
    assert f"The waiting room opens at {opens:%H:%M}." in later_page
    # and the clinician taking part has the button too
    assert (
        "Join the video consultation"
        in client_for(clinician).get(f"/appointments/{later.pk}/").content.decode()
    )


# ---------------------------------------------------------------------------------------------
# The call page


def test_the_call_page_serves_each_seat(room: Consultation, patient: User, clinician: User) -> None:
    # the patient: the waiting room, no clinician tools
    response = client_for(patient).get(f"/consult/{room.room}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "You are in the waiting room" in page
    assert "data-note-panel" not in page and "data-invite-form" not in page
    config = config_of(response)
    assert config["me"] == {
        "key": f"u{patient.pk}",
        "seat": "patient",
        "name": patient.get_full_name(),
    }
    assert config["socket"] == f"/ws/consult/{room.room}/"
    assert config["urls"]["chat"] == f"/consult/{room.room}/chat/"
    # the clinician: waiting list, note form, prescription and chart links, end button
    response = client_for(clinician).get(f"/consult/{room.room}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert config_of(response)["me"]["seat"] == "clinician"
    assert "data-waiting-list" in page and "data-note-panel" in page
    assert f"/clinic/patients/{room.patient_id}/prescriptions/new/" in page
    assert f'action="/consult/{room.room}/end/"' in page
    assert 'name="text"' in page


def test_a_guest_with_a_redeemed_link_gets_the_call_page(
    room: Consultation, clinician: User
) -> None:
    # given an invitation opened in this browser
    invite, token = do_invite(
        get_room_for_user(clinician, room.room, action=None), "Ana", "interpreter"
    )
    guest = english(Client())
    assert guest.post(f"/consult/join/{token}/").status_code == 200
    # when the guest goes on to the room
    response = guest.get(f"/consult/{room.room}/")
    # then they are in as a guest, without the recording consent or clinician tools
    assert response.status_code == 200
    assert config_of(response)["me"] == {"key": f"g{invite.pk}", "seat": "guest", "name": "Ana"}
    assert b"data-consent-toggle" not in response.content


@pytest.mark.parametrize("who", ["patient2", "outsider", "teammate"])
def test_outsiders_do_not_get_the_call_page(
    room: Consultation, who: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    response = client_for(user).get(f"/consult/{room.room}/")
    assert response.status_code == 404
    assert denied_for(user)


def test_the_call_page_sends_anonymous_visitors_to_the_login(room: Consultation) -> None:
    response = Client().get(f"/consult/{room.room}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_an_unknown_or_closed_room_is_not_found(room: Consultation, clinician: User) -> None:
    client = client_for(clinician)
    assert client.get("/consult/nosuchroom/").status_code == 404
    ended(room, clinician)
    assert client.get(f"/consult/{room.room}/").status_code == 404


def test_the_call_page_has_a_constant_number_of_queries(
    room: Consultation, clinician: User, patient: User, make_user: Callable[..., User]
) -> None:
    # given a quiet room
    before = {
        user.pk: queries(client_for(user), "get", f"/consult/{room.room}/")[0]
        for user in (clinician, patient)
    }
    # when it fills: the call started, consents given, guests invited, chat lines
    started(room, clinician, patient)
    doctor = get_room_for_user(clinician, room.room, action=None)
    for seat, user in (("patient", patient), ("clinician", clinician)):
        RecordingConsent.objects.create(consultation=room, seat=seat, user=user)
    for n in range(3):
        do_invite(doctor, f"Guest {n}", "family")
    attendance = Attendance.objects.get(consultation=room, user=clinician)
    for n in range(5):
        ChatMessage.objects.create(consultation=room, attendance=attendance, text=f"line {n}")
    after = {
        user.pk: queries(client_for(user), "get", f"/consult/{room.room}/")[0]
        for user in (clinician, patient)
    }
    # then the pages cost what they cost before
    assert after == before
    assert max(after.values()) <= 25


# ---------------------------------------------------------------------------------------------
# Ending the call


def test_the_clinician_ends_the_call_and_reads_its_summary(
    room: Consultation, clinician: User, patient: User
) -> None:
    started(room, clinician, patient)
    client = client_for(clinician)
    # when the clinician ends the call
    response = client.post(f"/consult/{room.room}/end/")
    # then the room is closed, the encounter finished, and the summary follows
    assert response.status_code == 302
    assert response["Location"] == f"/consult/{room.room}/summary/"
    room.refresh_from_db()
    assert room.status == Consultation.Status.ENDED and room.ended_by == clinician
    assert room.encounter is not None and room.encounter.ended_at == room.ended_at
    summary = client.get(response["Location"])
    assert summary.status_code == 200
    page = summary.content.decode()
    assert patient.get_full_name() in page and clinician.get_full_name() in page
    assert re.search(r"data-duration>\d+ min \d+ s<", page)


@pytest.mark.parametrize("who", ["patient", "patient2", "outsider", "teammate"])
def test_only_a_clinician_of_the_call_ends_it(
    room: Consultation, who: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    response = client_for(user).post(f"/consult/{room.room}/end/")
    assert response.status_code == 404
    assert denied_for(user)
    room.refresh_from_db()
    assert room.status == Consultation.Status.OPEN


def test_ending_needs_a_post(room: Consultation, clinician: User) -> None:
    assert client_for(clinician).get(f"/consult/{room.room}/end/").status_code == 405


# ---------------------------------------------------------------------------------------------
# Summary


def test_the_summary_is_for_the_patient_and_their_clinical_staff(
    room: Consultation, clinician: User, patient: User, teammate: User
) -> None:
    started(room, clinician, patient)
    attendance = Attendance.objects.get(consultation=room, user=patient)
    ChatMessage.objects.create(consultation=room, attendance=attendance, text="My knee hurts")
    ended(room, clinician)
    for user in (patient, clinician, teammate):
        response = client_for(user).get(f"/consult/{room.room}/summary/")
        assert response.status_code == 200
        assert "My knee hurts" in response.content.decode()
    # the patient does not see the clinic's notes section
    assert b"data-notes" not in client_for(patient).get(f"/consult/{room.room}/summary/").content


@pytest.mark.parametrize("who", ["patient2", "outsider", "billing_user"])
def test_outsiders_do_not_get_the_summary(
    room: Consultation, clinician: User, who: str, request: pytest.FixtureRequest
) -> None:
    ended(room, clinician)
    user: User = request.getfixturevalue(who)
    assert client_for(user).get(f"/consult/{room.room}/summary/").status_code == 404
    assert denied_for(user)
    assert Client().get(f"/consult/{room.room}/summary/").status_code == 302


def test_the_summary_has_a_constant_number_of_queries(
    room: Consultation, clinician: User, patient: User
) -> None:
    started(room, clinician, patient)
    attendance = Attendance.objects.get(consultation=room, user=patient)
    ChatMessage.objects.create(consultation=room, attendance=attendance, text="one")
    client = client_for(clinician)
    url = f"/consult/{room.room}/summary/"
    one = queries(client, "get", url)[0]
    for n in range(6):
        ChatMessage.objects.create(consultation=room, attendance=attendance, text=f"more {n}")
    ClinicalNote.objects.create(
        patient=room.patient,
        kind="consultation",
        title="Seen",
        text="Fine",
        recorded_by=clinician,
        signed_at=timezone.now(),
        encounter=room.encounter,
    )
    assert queries(client, "get", url)[0] == one


# ---------------------------------------------------------------------------------------------
# The consultation note


def test_the_note_written_in_the_call_is_signed_and_linked_to_the_encounter(
    room: Consultation, clinician: User, patient: User
) -> None:
    room = started(room, clinician, patient)
    client = client_for(clinician)
    # when the clinician saves the note from the call page (htmx)
    count, response = queries(
        client,
        "post",
        f"/consult/{room.room}/note/",
        kind="consultation",
        title="Video consultation",
        text="Knee pain improving; continue physiotherapy.",
        sensitivity="normal",
    )
    # then it is in the record, signed, linked to the call's encounter
    assert response.status_code == 200
    note = ClinicalNote.objects.get()
    assert note.encounter == room.encounter and note.recorded_by == clinician
    assert note.kind == "consultation" and signature_is_valid(note)
    assert f'data-note-saved="{note.pk}"' in response.content.decode()
    assert count <= 30


def test_a_note_without_text_is_refused_with_the_form(room: Consultation, clinician: User) -> None:
    response = client_for(clinician).post(
        f"/consult/{room.room}/note/",
        {"kind": "consultation", "title": "x", "text": "", "sensitivity": "normal"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 400
    assert b"field-error" in response.content
    assert not ClinicalNote.objects.exists()


def test_without_htmx_the_note_form_returns_to_the_call(
    room: Consultation, clinician: User, patient: User
) -> None:
    room = started(room, clinician, patient)
    client = client_for(clinician)
    data = {"kind": "consultation", "title": "Seen", "text": "Fine.", "sensitivity": "normal"}
    response = client.post(f"/consult/{room.room}/note/", data, follow=True)
    assert response.redirect_chain == [(f"/consult/{room.room}/", 302)]
    assert "The note is signed and saved." in response.content.decode()
    assert ClinicalNote.objects.get().encounter == room.encounter


@pytest.mark.parametrize("who", ["patient", "outsider", "teammate"])
def test_only_a_clinician_of_the_call_writes_its_note(
    room: Consultation, who: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    response = client_for(user).post(
        f"/consult/{room.room}/note/",
        {"kind": "consultation", "title": "x", "text": "y", "sensitivity": "normal"},
    )
    assert response.status_code == 404
    assert denied_for(user)
    assert not ClinicalNote.objects.exists()


# ---------------------------------------------------------------------------------------------
# Urgent room


def test_a_clinician_of_the_care_team_opens_an_urgent_room(
    record: Patient, clinician: User
) -> None:
    response = client_for(clinician).post(
        f"/consult/urgent/{record.pk}/", {"reason": "Chest pain call-back"}
    )
    room = Consultation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/consult/{room.room}/"
    assert room.urgent and room.opened_by == clinician and room.appointment is None
    assert room.reason == "Chest pain call-back"
    # and they are the room's clinician
    page = client_for(clinician).get(response["Location"])
    assert page.status_code == 200 and config_of(page)["me"]["seat"] == "clinician"


@pytest.mark.parametrize("who", ["outsider", "patient", "billing_user"])
def test_an_urgent_room_needs_care_team_access(
    record: Patient, who: str, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    response = client_for(user).post(f"/consult/urgent/{record.pk}/")
    assert response.status_code == 404
    assert denied_for(user)
    assert not Consultation.objects.exists()


def test_the_chart_offers_the_video_call_to_its_clinicians_only(
    record: Patient, clinician: User, patient: User
) -> None:
    page = client_for(clinician).get(f"/clinic/patients/{record.pk}/").content.decode()
    assert f'action="/consult/urgent/{record.pk}/"' in page
    assert "/consult/urgent/" not in client_for(patient).get("/record/").content.decode()


# ---------------------------------------------------------------------------------------------
# Guests


def test_a_guest_link_works_in_the_first_browser_only(room: Consultation, clinician: User) -> None:
    invite, token = do_invite(get_room_for_user(clinician, room.room, action=None), "Ana", "family")
    first = english(Client())
    # when the guest opens the link
    response = first.get(f"/consult/join/{token}/")
    # then the page greets them by name and asks them to join with this browser
    assert response.status_code == 200
    page = response.content.decode()
    assert "Ana" in page and "data-join-invite" in page
    assert 'data-check="camera"' not in page
    # and opening it did not use it up (a messaging app's link preview does the same)
    assert english(Client()).get(f"/consult/join/{token}/").status_code == 200
    # when they join
    response = first.post(f"/consult/join/{token}/")
    # then the link is theirs: device check, then the room
    page = response.content.decode()
    assert 'data-check="camera"' in page
    assert f'href="/consult/{room.room}/"' in page
    assert first.session[GUEST_SESSION_KEY] == invite.pk
    # and the same browser may open it again, no other one
    assert 'data-check="camera"' in first.get(f"/consult/join/{token}/").content.decode()
    assert english(Client()).get(f"/consult/join/{token}/").status_code == 404
    assert english(Client()).post(f"/consult/join/{token}/").status_code == 404
    assert english(Client()).get("/consult/join/not-a-token/").status_code == 404


def test_a_guest_page_has_a_constant_number_of_queries(room: Consultation, clinician: User) -> None:
    _invite, token = do_invite(
        get_room_for_user(clinician, room.room, action=None), "Ana", "family"
    )
    guest = Client()
    guest.post(f"/consult/join/{token}/")
    first = queries(guest, "get", f"/consult/join/{token}/")[0]
    again = queries(guest, "get", f"/consult/join/{token}/")[0]
    assert again == first <= 15


# ---------------------------------------------------------------------------------------------
# The clinician's list


def test_the_list_shows_my_video_consultations_and_who_waits(
    appointment: Appointment,
    record: Patient,
    video_visit: AppointmentType,
    clinician: User,
    patient: User,
) -> None:
    # given the patient in the waiting room of today's appointment, and another tomorrow
    room = room_for_appointment(appointment)
    arrive(get_room_for_user(patient, room.room, action=None))
    tomorrow = make_video_appointment(
        record, video_visit, clinician, starts=timezone.now() + dt.timedelta(days=1)
    )
    client = client_for(clinician)
    # when the clinician opens the list
    response = client.get("/clinic/consultations/")
    # then both are there, today's with its room and one person waiting
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-room="{room.room}"' in page
    assert f'href="/consult/appointment/{tomorrow.pk}/"' in page
    row = re.search(rf'data-room="{room.room}".*?</li>', page, re.S)
    assert row and re.search(r"data-waiting-count>1<", row.group(0))
    assert "Video consultations" in page  # the navigation item
    assert AuditEvent.objects.filter(
        action=Action.READ, actor_id=clinician.pk, detail__what="consultations"
    ).exists()


def test_the_list_does_not_count_who_waited_and_left(
    room: Consultation, clinician: User, patient: User
) -> None:
    # given the patient came to the waiting room and went away again
    waiting = get_room_for_user(patient, room.room, action=None)
    arrive(waiting)
    leave(waiting)
    # then nobody is waiting there
    page = client_for(clinician).get("/clinic/consultations/").content.decode()
    row = re.search(rf'data-room="{room.room}".*?</li>', page, re.S)
    assert row and "data-waiting-count>0<" in row.group(0)


def test_the_list_does_not_show_other_clinicians_consultations(
    appointment: Appointment, outsider: User
) -> None:
    page = client_for(outsider).get("/clinic/consultations/").content.decode()
    assert f"/consult/appointment/{appointment.pk}/" not in page


def test_the_list_is_for_clinicians(patient: User, billing_user: User) -> None:
    assert client_for(patient).get("/clinic/consultations/").status_code == 404
    assert client_for(billing_user).get("/clinic/consultations/").status_code == 404
    assert Client().get("/clinic/consultations/").status_code == 302


def test_the_list_has_a_constant_number_of_queries(
    record: Patient,
    video_visit: AppointmentType,
    clinician: User,
    patient: User,
) -> None:
    make_video_appointment(record, video_visit, clinician)
    client = client_for(clinician)
    one = queries(client, "get", "/clinic/consultations/")[0]
    for days in (1, 2, 3):
        later = make_video_appointment(
            record, video_visit, clinician, starts=timezone.now() + dt.timedelta(days=days)
        )
        room = room_for_appointment(later)
        arrive(get_room_for_user(clinician, room.room, action=None))
    client.post(f"/consult/urgent/{record.pk}/")
    assert queries(client, "get", "/clinic/consultations/")[0] == one
