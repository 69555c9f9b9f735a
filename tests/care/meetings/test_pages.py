"""The meeting pages: who sees what (404 and an audit row for anybody else), the flow through
the pages, and a fixed number of queries on the list and the meeting page."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent, Outcome
from apps.care.models import Meeting, MeetingCase, MeetingDecision
from apps.care.services.meeting_decisions import do_record_decision
from apps.care.services.meetings import (
    do_add_case,
    do_add_participant,
    do_record_attendance,
    do_start_meeting,
)
from apps.records.models import Patient
from apps.teleconsult.models import Consultation

from .conftest import tomorrow_at

MEETING_POSTS = [
    "care:meeting_cancel",
    "care:meeting_start",
    "care:meeting_close",
    "care:meeting_participant_add",
    "care:meeting_participant_remove",
    "care:meeting_attendance",
    "care:meeting_case_add",
    "care:meeting_video",
]
CASE_POSTS = [
    "care:meeting_case_move",
    "care:meeting_case_summary",
    "care:meeting_decision",
    "care:meeting_sign",
]


def denied(user: User, **filters: Any) -> bool:
    return AuditEvent.objects.filter(
        actor_id=user.pk, action=Action.DENIED, outcome=Outcome.DENIED, **filters
    ).exists()


@pytest.mark.parametrize("who", ["outsider", "patient", "billing_user", "admin_user"])
def test_strangers_get_404_and_an_audit_row_everywhere(
    request: pytest.FixtureRequest,
    who: str,
    meeting: Meeting,
    case: MeetingCase,
    client_for: Callable[[User], Client],
) -> None:
    user: User = request.getfixturevalue(who)
    client = client_for(user)
    gets = [
        reverse("care:meeting", args=[meeting.pk]),
        reverse("care:meeting_live", args=[meeting.pk]),
        reverse("care:meeting_edit", args=[meeting.pk]),
        reverse("care:meeting_case", args=[case.pk]),
    ]
    posts = [reverse(name, args=[meeting.pk]) for name in MEETING_POSTS] + [
        reverse(name, args=[case.pk]) for name in CASE_POSTS
    ]
    for url in gets:
        before = AuditEvent.objects.filter(actor_id=user.pk, action=Action.DENIED).count()
        assert client.get(url).status_code == 404, url
        assert (
            AuditEvent.objects.filter(actor_id=user.pk, action=Action.DENIED).count() == before + 1
        ), url
    for url in posts:
        before = AuditEvent.objects.filter(actor_id=user.pk, action=Action.DENIED).count()
        assert client.post(url, {"user": user.pk, "patient": case.patient_id}).status_code == 404, (
            url
        )
        assert (
            AuditEvent.objects.filter(actor_id=user.pk, action=Action.DENIED).count() == before + 1
        ), url
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.PLANNED and meeting.consultation is None


@pytest.mark.parametrize("who", ["patient", "billing_user"])
def test_the_list_and_the_new_page_are_for_clinicians(
    request: pytest.FixtureRequest, who: str, client_for: Callable[[User], Client]
) -> None:
    user: User = request.getfixturevalue(who)
    client = client_for(user)
    for url in (reverse("care:meetings"), reverse("care:meeting_new")):
        assert client.get(url).status_code == 404
    assert denied(user)


def test_the_list_shows_only_my_meetings(
    meeting: Meeting,
    make_meeting: Callable[..., Meeting],
    outsider: User,
    nurse: User,
    client_for: Callable[[User], Client],
) -> None:
    other = make_meeting(chair=outsider, participants=[], title="Réunion d'un autre service")
    page = client_for(nurse).get(reverse("care:meetings")).content.decode()
    assert meeting.title in page and other.title not in page


def test_non_chairs_cannot_run_the_meeting(
    meeting: Meeting,
    case: MeetingCase,
    nurse: User,
    clinician: User,
    client_for: Callable[[User], Client],
) -> None:
    client = client_for(nurse)
    for name in ("care:meeting_start", "care:meeting_cancel", "care:meeting_attendance"):
        assert client.post(reverse(name, args=[meeting.pk])).status_code == 404
    do_start_meeting(clinician, meeting)
    do_record_attendance(clinician, meeting, [clinician.pk])
    do_record_decision(clinician, case, "Chirurgie", [])
    response = client.post(reverse("care:meeting_sign", args=[case.pk]))
    assert response.status_code == 404
    assert denied(nurse, patient_id=str(case.patient_id), object_type="care.meetingcase")
    assert not MeetingDecision.objects.get(case=case).is_signed


def test_a_participant_cannot_add_a_patient_they_may_not_see(
    meeting: Meeting,
    clinician: User,
    outsider: User,
    record: Patient,
    client_for: Callable[[User], Client],
) -> None:
    do_add_participant(clinician, meeting, outsider.pk)
    client = client_for(outsider)
    page = client.get(reverse("care:meeting", args=[meeting.pk])).content.decode()
    assert f'value="{record.pk}"' not in page  # the picker offers only their own patients
    response = client.post(
        reverse("care:meeting_case_add", args=[meeting.pk]),
        {"patient": record.pk, "question": "Avis ?"},
    )
    assert response.status_code == 404
    assert denied(outsider, patient_id=str(record.pk))
    assert not MeetingCase.objects.exists()


def test_scheduling_through_the_page(
    clinician: User, nurse: User, client_for: Callable[[User], Client]
) -> None:
    client = client_for(clinician)
    form = client.get(reverse("care:meeting_new")).content.decode()
    assert nurse.get_full_name() in form
    data = {
        "title": "RCP digestive",
        "kind": "tumour-board",
        "starts_at": tomorrow_at(8).strftime("%Y-%m-%dT%H:%M"),
        "ends_at": tomorrow_at(9).strftime("%Y-%m-%dT%H:%M"),
        "participants": [nurse.pk],
    }
    response = client.post(reverse("care:meeting_new"), data)
    meeting = Meeting.objects.get(title="RCP digestive")
    assert response.status_code == 302 and response["Location"] == f"/clinic/meetings/{meeting.pk}/"
    assert meeting.starts_at == tomorrow_at(8)
    bad = client.post(reverse("care:meeting_new"), {**data, "ends_at": data["starts_at"]})
    assert bad.status_code == 400
    bad = client.post(reverse("care:meeting_new"), {**data, "starts_at": "not a date"})
    assert bad.status_code == 400


def test_the_whole_flow_through_the_pages(
    meeting: Meeting,
    filled_record: Patient,
    clinician: User,
    nurse: User,
    client_for: Callable[[User], Client],
) -> None:
    client = client_for(clinician)
    url = reverse("care:meeting", args=[meeting.pk])
    response = client.post(
        reverse("care:meeting_case_add", args=[meeting.pk]),
        {"patient": filled_record.pk, "question": "Chirurgie ?"},
    )
    case = MeetingCase.objects.get(meeting=meeting)
    assert response.status_code == 302
    page = client.get(url).content.decode()
    assert "Masse lobaire supérieure droite" in page and "Chirurgie ?" in page
    # Reading the page is audited against the case's patient.
    assert AuditEvent.objects.filter(
        actor_id=clinician.pk,
        object_type="care.meetingcase",
        patient_id=str(filled_record.pk),
        action=Action.READ,
    ).exists()
    client.post(
        reverse("care:meeting_case_summary", args=[case.pk]),
        {"question": "Chirurgie ou SBRT ?", "summary": "Résumé revu."},
    )
    case.refresh_from_db()
    assert case.summary == "Résumé revu." and case.question == "Chirurgie ou SBRT ?"
    client.post(reverse("care:meeting_start", args=[meeting.pk]))
    client.post(
        reverse("care:meeting_attendance", args=[meeting.pk]), {"present": [clinician.pk, nurse.pk]}
    )
    bad = client.post(
        reverse("care:meeting_decision", args=[case.pk]),
        {
            "text": "Lobectomie",
            "action-0-title": "Appeler",
            "action-0-kind": "call",
            "action-0-due": "400",
            "action-0-assignee": str(nurse.pk),
        },
    )
    assert bad.status_code == 400
    assert "0 to 365" in bad.content.decode() and "Lobectomie" in bad.content.decode()
    client.post(
        reverse("care:meeting_decision", args=[case.pk]),
        {
            "text": "Lobectomie",
            "action-0-title": "Appeler la patiente",
            "action-0-kind": "call",
            "action-0-due": "2",
            "action-0-assignee": str(nurse.pk),
            "action-1-kind": "call",
        },
    )
    decision = MeetingDecision.objects.get(case=case)
    assert decision.actions == [
        {
            "title": "Appeler la patiente",
            "kind": "call",
            "assignee": nurse.pk,
            "role": "",
            "due_days": 2,
        }
    ]
    response = client.post(reverse("care:meeting_sign", args=[case.pk]))
    assert response.status_code == 302
    decision.refresh_from_db()
    assert decision.is_signed
    page = client.get(url).content.decode()
    pdf_url = reverse("records:document_download", args=[decision.document_id])
    assert pdf_url in page and "data-decision-pdf" in page
    pdf = client.get(pdf_url)
    assert pdf.status_code == 200 and b"".join(
        pdf.streaming_content if pdf.streaming else [pdf.content]
    ).startswith(b"%PDF-")
    client.post(reverse("care:meeting_close", args=[meeting.pk]))
    meeting.refresh_from_db()
    assert meeting.status == Meeting.Status.CLOSED


def test_joining_the_video_opens_the_staff_room(
    meeting: Meeting,
    clinician: User,
    nurse: User,
    coordinator: User,
    outsider: User,
    client_for: Callable[[User], Client],
) -> None:
    response = client_for(nurse).post(reverse("care:meeting_video", args=[meeting.pk]))
    meeting.refresh_from_db()
    room = meeting.consultation
    assert room is not None and room.is_staff_room
    assert response.status_code == 302 and response["Location"] == f"/consult/{room.room}/"
    assert set(room.staff.values_list("pk", flat=True)) == {clinician.pk, nurse.pk, coordinator.pk}
    assert client_for(nurse).get(response["Location"]).status_code == 200
    assert client_for(outsider).get(response["Location"]).status_code == 404
    # The same room for everyone, kept in step with the participants.
    client_for(clinician).post(reverse("care:meeting_video", args=[meeting.pk]))
    assert Consultation.objects.count() == 1
    do_add_participant(clinician, meeting, outsider.pk)
    assert client_for(outsider).get(response["Location"]).status_code == 200
    # Closing the meeting ends the room.
    do_start_meeting(clinician, meeting)
    client_for(clinician).post(reverse("care:meeting_close", args=[meeting.pk]))
    room.refresh_from_db()
    assert room.status == Consultation.Status.ENDED
    assert client_for(nurse).get(response["Location"]).status_code == 404


def test_fragments_for_live_updates(
    meeting: Meeting, case: MeetingCase, nurse: User, client_for: Callable[[User], Client]
) -> None:
    client = client_for(nurse)
    live = client.get(reverse("care:meeting_live", args=[meeting.pk]))
    assert live.status_code == 200 and f'data-case="{case.pk}"' in live.content.decode()
    one = client.get(reverse("care:meeting_case", args=[case.pk]))
    assert one.status_code == 200 and case.question in one.content.decode()
    assert "<html" not in one.content.decode()


def _count(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_the_list_makes_a_fixed_number_of_queries(
    make_meeting: Callable[..., Meeting],
    clinician: User,
    record: Patient,
    client_for: Callable[[User], Client],
    django_assert_num_queries: Any,
) -> None:
    client = client_for(clinician)
    make_meeting()
    client.get(reverse("care:meetings"))
    one = _count(client, reverse("care:meetings"))
    for n in range(6):
        item = make_meeting(title=f"RCP {n}")
        do_add_case(clinician, item, record.pk, "Q ?")
        if n % 2:
            do_start_meeting(clinician, item)
    with django_assert_num_queries(one):
        page = client.get(reverse("care:meetings"))
    assert page.content.decode().count("data-meeting-row") == 7


def test_the_meeting_page_makes_a_fixed_number_of_queries(
    meeting: Meeting,
    case: MeetingCase,
    clinician: User,
    nurse: User,
    make_patient: Callable[..., Patient],
    client_for: Callable[[User], Client],
    django_assert_num_queries: Any,
) -> None:
    from apps.records.services.care_team import default_team, do_add_member

    client = client_for(clinician)
    url = reverse("care:meeting", args=[meeting.pk])
    do_start_meeting(clinician, meeting)
    client.get(url)
    one = _count(client, url)
    for n in range(5):
        chart = make_patient(family_name=f"Cas{n}")
        do_add_member(default_team(chart), clinician, is_lead=True)
        do_add_member(default_team(chart), nurse)
        extra = do_add_case(clinician, meeting, chart.pk, f"Question {n}")
        do_record_decision(
            clinician,
            extra,
            f"Décision {n}",
            [{"title": "Appeler", "kind": "call", "assignee": nurse.pk, "due_days": 3}],
        )
    with django_assert_num_queries(one):
        page = client.get(url)
    assert page.content.decode().count("data-case-url") == 6
