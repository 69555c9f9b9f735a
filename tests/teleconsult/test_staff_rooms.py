"""Staff rooms: a video room without a patient (a multidisciplinary meeting's video).

Only the clinicians listed in its staff enter, at once, as clinicians; nobody waits, no
patient, no guest, no recording, no Encounter; nobody else (patients included) gets in.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async as db
from django.http import Http404
from django.urls import reverse

from apps.accounts.models import User
from apps.audit.models import AuditEvent, Outcome
from apps.records.models import Encounter
from apps.teleconsult.consumers import CLOSE_NOT_ALLOWED, CLOSE_REFUSED
from apps.teleconsult.models import Consultation, Seat
from apps.teleconsult.services import ConsultError
from apps.teleconsult.services.errors import NotAllowed
from apps.teleconsult.services.guests import do_invite
from apps.teleconsult.services.recording import do_set_consent, do_start_recording
from apps.teleconsult.services.rooms import (
    do_close_staff_room,
    do_open_staff_room,
    get_room_for_user,
    set_room_staff,
)
from tests.conftest import verified_client

from .sockets import attempt, join, user_cookie


@pytest.fixture
def colleague(make_user: Any, organization: Any) -> User:
    return make_user("nurse", email="colleague@example.test", organization=organization)


@pytest.fixture
def staff_room(clinician: User, colleague: User) -> Consultation:
    return do_open_staff_room(clinician, [colleague.pk], title="RCP du jeudi")


def test_a_staff_room_has_no_patient_and_lists_its_staff(
    staff_room: Consultation, clinician: User, colleague: User, patient: User
) -> None:
    assert staff_room.is_staff_room and staff_room.patient_ref == ""
    assert set(staff_room.staff.values_list("pk", flat=True)) == {clinician.pk, colleague.pk}
    # Only clinicians can be staff.
    set_room_staff(staff_room, [clinician.pk, colleague.pk, patient.pk])
    assert patient not in staff_room.staff.all()


def test_staff_enter_as_clinicians_and_nobody_else(
    staff_room: Consultation,
    clinician: User,
    colleague: User,
    outsider: User,
    patient: User,
    billing_user: User,
) -> None:
    member = get_room_for_user(colleague, staff_room.room)
    assert member.seat == Seat.CLINICIAN and member.access is None
    for stranger in (outsider, patient, billing_user):
        with pytest.raises(Http404):
            get_room_for_user(stranger, staff_room.room)
        assert AuditEvent.objects.filter(
            actor_id=stranger.pk, outcome=Outcome.DENIED, object_id=staff_room.room
        ).exists()
    # Taken off the staff: out.
    set_room_staff(staff_room, [clinician.pk])
    with pytest.raises(Http404):
        get_room_for_user(colleague, staff_room.room)


def test_no_guest_no_recording_in_a_staff_room(staff_room: Consultation, clinician: User) -> None:
    member = get_room_for_user(clinician, staff_room.room)
    with pytest.raises(NotAllowed):
        do_invite(member, "Invité", "clinician")
    with pytest.raises(NotAllowed):
        do_set_consent(member, True)
    with pytest.raises(NotAllowed):
        do_start_recording(member)


def test_a_closed_staff_room_lets_nobody_in(staff_room: Consultation, clinician: User) -> None:
    do_close_staff_room(staff_room, clinician)
    staff_room.refresh_from_db()
    assert staff_room.status == Consultation.Status.ENDED
    with pytest.raises(Http404):
        get_room_for_user(clinician, staff_room.room)


def test_only_clinicians_open_a_staff_room(billing_user: User) -> None:
    with pytest.raises(ConsultError):
        do_open_staff_room(billing_user, [])


def test_the_room_page_of_a_staff_room(
    staff_room: Consultation, colleague: User, outsider: User
) -> None:
    url = reverse("teleconsult:room", args=[staff_room.room])
    page = verified_client(colleague).get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "RCP du jeudi" in html
    for absent in (
        "data-waiting-panel",
        "data-invite-panel",
        "data-recording-panel",
        "data-snapshot",
        "data-end-form",
    ):
        assert absent not in html
    assert 'data-action="leave"' in html
    assert verified_client(outsider).get(url).status_code == 404
    # The past-consultation summary is a record page: a staff room has none.
    summary = reverse("teleconsult:summary", args=[staff_room.room])
    assert verified_client(colleague).get(summary).status_code == 404


def test_staff_rooms_are_not_in_the_urgent_calls_list(
    staff_room: Consultation, clinician: User
) -> None:
    page = verified_client(clinician).get(reverse("teleconsult:consultations"))
    assert page.status_code == 200
    assert staff_room.room not in page.content.decode()


@pytest.mark.django_db(transaction=True)
def test_staff_meet_in_the_room_without_a_waiting_room(
    clinician: User, colleague: User, outsider: User
) -> None:
    room = do_open_staff_room(clinician, [colleague.pk], title="RCP")

    async def scenario() -> tuple[dict[str, Any], int, int]:
        first = await join(room.room, await user_cookie(clinician))
        second = await join(room.room, await user_cookie(colleague))
        assert first.welcome["you"]["admitted"] and second.welcome["you"]["admitted"]
        joined = await first.expect("peer.joined")
        # A stranger is refused at the door.
        _communicator, connected, refused = await attempt(room.room, await user_cookie(outsider))
        assert not connected
        # Taken off the meeting: the socket re-checks and closes.
        await db(set_room_staff)(room, [clinician.pk])
        closed = await second.expect_close()
        await first.close()
        return joined, int(refused), closed

    joined, refused, closed = async_to_sync(scenario)()
    assert joined["peer"]["key"] == f"u{colleague.pk}" and joined["peer"]["admitted"]
    assert refused == CLOSE_NOT_ALLOWED
    assert closed == CLOSE_REFUSED
    room.refresh_from_db()
    assert room.started_at is None and room.encounter_id is None
    assert not Encounter.objects.exists()
