"""The meeting services' rules: scheduling, participants, agenda, summaries, attendance,
decisions and their follow-up actions, signature (apps/care/services/meetings.py and
meeting_decisions.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.http import Http404
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.audit.models import Action, AuditEvent, Outcome
from apps.care.models import Meeting, MeetingCase, MeetingDecision, MeetingParticipant
from apps.care.services import CareError
from apps.care.services.meeting_decisions import (
    clean_actions,
    do_record_decision,
    do_sign_decision,
)
from apps.care.services.meeting_summary import build_case_summary
from apps.care.services.meetings import (
    do_add_case,
    do_add_participant,
    do_cancel_meeting,
    do_edit_meeting,
    do_move_case,
    do_record_attendance,
    do_remove_participant,
    do_start_meeting,
    do_update_summary,
)
from apps.core.realtime import user_group
from apps.notifications.models import Notification
from apps.records.models import Patient
from tests.care.conftest import access_as

from .conftest import tomorrow_at


def test_scheduling_invites_and_notifies_without_clinical_detail(
    meeting: Meeting, clinician: User, nurse: User, coordinator: User
) -> None:
    assert meeting.chair == clinician and meeting.status == Meeting.Status.PLANNED
    seats = set(
        MeetingParticipant.objects.filter(meeting=meeting).values_list("user_id", flat=True)
    )
    assert seats == {clinician.pk, nurse.pk, coordinator.pk}
    notes = Notification.objects.filter(kind="care.task", user__in=[nurse, coordinator])
    assert notes.count() == 2
    for note in notes:
        assert meeting.title not in note.title + note.body  # the title may name a disease
        assert note.link == f"/clinic/meetings/{meeting.pk}/"
    assert not Notification.objects.filter(user=clinician).exists()
    assert AuditEvent.objects.filter(
        action=Action.CREATE, object_type="care.meeting", object_id=str(meeting.pk)
    ).exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": "  "}, "title"),
        ({"kind": "party"}, "kind"),
        ({"ends_at": tomorrow_at(14)}, "5 minutes"),
        (
            {
                "starts_at": timezone.now() - dt.timedelta(days=2),
                "ends_at": timezone.now() - dt.timedelta(days=2, hours=-1),
            },
            "past",
        ),
        ({"starts_at": "tomorrow"}, "start"),
    ],
)
def test_scheduling_refuses_bad_input(
    make_meeting: Callable[..., Meeting], change: dict[str, Any], message: str
) -> None:
    with pytest.raises(CareError, match=message):
        make_meeting(**change)
    assert not Meeting.objects.exists()


def test_participants_are_clinicians_of_the_organisation(
    make_meeting: Callable[..., Meeting],
    make_user: Callable[..., User],
    billing_user: User,
    patient: User,
) -> None:
    elsewhere = Organization.objects.create(name="Autre hôpital")
    foreign = make_user(Role.PHYSICIAN, organization=elsewhere)
    for wrong in (foreign, billing_user, patient):
        with pytest.raises(CareError, match="organisation"):
            make_meeting(participants=[wrong])


def test_only_clinicians_schedule(make_meeting: Callable[..., Meeting], billing_user: User) -> None:
    with pytest.raises(CareError):
        make_meeting(chair=billing_user)


def test_edit_and_cancel_only_while_planned_and_only_by_the_chair(
    meeting: Meeting, clinician: User, nurse: User
) -> None:
    times = {"starts_at": tomorrow_at(9), "ends_at": tomorrow_at(10)}
    with pytest.raises(CareError, match="chair"):
        do_edit_meeting(nurse, meeting, title="X", kind="case-review", **times)
    do_edit_meeting(clinician, meeting, title="Revue de cas", kind="case-review", **times)
    meeting.refresh_from_db()
    assert meeting.title == "Revue de cas" and meeting.starts_at == tomorrow_at(9)
    do_start_meeting(clinician, meeting)
    with pytest.raises(CareError, match="planned"):
        do_edit_meeting(clinician, meeting, title="Y", kind="case-review", **times)
    with pytest.raises(CareError, match="planned"):
        do_cancel_meeting(clinician, meeting)


def test_cancelling_tells_the_participants(meeting: Meeting, clinician: User, nurse: User) -> None:
    do_cancel_meeting(clinician, meeting)
    assert meeting.status == Meeting.Status.CANCELLED
    assert Notification.objects.filter(user=nurse, title__icontains="cancel").exists()


def test_add_and_remove_participants(
    meeting: Meeting, clinician: User, nurse: User, outsider: User
) -> None:
    do_add_participant(clinician, meeting, outsider.pk)
    assert MeetingParticipant.objects.filter(meeting=meeting, user=outsider).exists()
    with pytest.raises(CareError, match="already"):
        do_add_participant(clinician, meeting, outsider.pk)
    with pytest.raises(CareError, match="chair"):
        do_add_participant(nurse, meeting, outsider.pk)
    do_remove_participant(clinician, meeting, outsider.pk)
    assert not MeetingParticipant.objects.filter(meeting=meeting, user=outsider).exists()
    with pytest.raises(CareError):
        do_remove_participant(clinician, meeting, clinician.pk)


def test_a_case_needs_record_access_and_the_denial_is_audited(
    meeting: Meeting, clinician: User, outsider: User, record: Patient
) -> None:
    do_add_participant(clinician, meeting, outsider.pk)
    with pytest.raises(Http404):
        do_add_case(outsider, meeting, record.pk, "Avis ?")
    assert not MeetingCase.objects.exists()
    assert AuditEvent.objects.filter(
        actor_id=outsider.pk, outcome=Outcome.DENIED, patient_id=str(record.pk)
    ).exists()


def test_the_summary_is_built_from_the_record(case: MeetingCase, clinician: User) -> None:
    summary = case.summary
    assert "Non-small cell lung cancer" in summary
    assert "Penicillin" in summary and "urticaire" in summary
    assert "Metformine 500 mg, 1-0-1" in summary
    # Only the latest weight, with its date.
    assert "68.5 kg" in summary and "71" not in summary
    assert "Masse lobaire supérieure droite de 32 mm" in summary
    assert case.prepared_at is not None and case.order == 1
    assert AuditEvent.objects.filter(
        action=Action.CREATE, object_type="care.meetingcase", patient_id=str(case.patient_id)
    ).exists()


def test_the_summary_leaves_out_what_the_presenter_may_not_see(
    filled_record: Patient, clinician: User, settings: Any
) -> None:
    from apps.records.models import Condition, Sensitivity

    hidden = Condition.objects.filter(patient=filled_record).first()
    assert hidden is not None
    Condition.objects.filter(pk=hidden.pk).update(sensitivity=Sensitivity.MENTAL_HEALTH)
    settings.RECORDS_SENSITIVE_ROLES = {Sensitivity.MENTAL_HEALTH: [Role.NURSE]}
    assert "Non-small cell lung cancer" not in build_case_summary(
        access_as(clinician, filled_record)
    )


def test_one_case_per_patient(meeting: Meeting, case: MeetingCase, clinician: User) -> None:
    with pytest.raises(CareError, match="already"):
        do_add_case(clinician, meeting, case.patient_id, "Encore ?")


def test_only_the_presenter_edits_the_summary_and_only_before_the_meeting(
    meeting: Meeting, case: MeetingCase, clinician: User, nurse: User
) -> None:
    with pytest.raises(CareError, match="presenting"):
        do_update_summary(nurse, case, "Résumé")
    do_update_summary(clinician, case, "Résumé corrigé", question="Chirurgie ?")
    case.refresh_from_db()
    assert case.summary == "Résumé corrigé" and case.question == "Chirurgie ?"
    do_start_meeting(clinician, meeting)
    case.refresh_from_db()
    with pytest.raises(CareError, match="before the meeting"):
        do_update_summary(clinician, case, "Trop tard")


def test_reordering_the_agenda(
    meeting: Meeting, case: MeetingCase, clinician: User, record2: Patient
) -> None:
    second = do_add_case(clinician, meeting, record2.pk, "Deuxième cas")
    assert second.order == 2
    do_move_case(clinician, second, "up")
    order = list(MeetingCase.objects.filter(meeting=meeting).values_list("pk", flat=True))
    assert order == [second.pk, case.pk]
    with pytest.raises(CareError):
        do_move_case(clinician, second, "sideways")


def test_attendance_only_for_participants_while_in_progress(
    meeting: Meeting, clinician: User, nurse: User, outsider: User
) -> None:
    with pytest.raises(CareError, match="in progress"):
        do_record_attendance(clinician, meeting, [nurse.pk])
    do_start_meeting(clinician, meeting)
    with pytest.raises(CareError, match="participants"):
        do_record_attendance(clinician, meeting, [outsider.pk])
    with pytest.raises(CareError, match="chair"):
        do_record_attendance(nurse, meeting, [nurse.pk])
    assert do_record_attendance(clinician, meeting, [nurse.pk, "x"]) == [nurse.pk]
    assert set(
        MeetingParticipant.objects.filter(meeting=meeting, attended=True).values_list(
            "user_id", flat=True
        )
    ) == {nurse.pk}


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ({"title": "", "kind": "call", "role": "nurse", "due_days": 1}, "title"),
        ({"title": "A", "kind": "dance", "role": "nurse", "due_days": 1}, "kind"),
        ({"title": "A", "kind": "call", "role": "", "due_days": 1}, "who does it"),
        ({"title": "A", "kind": "call", "role": "billing", "due_days": 1}, "who does it"),
        ({"title": "A", "kind": "call", "role": "nurse", "due_days": 366}, "0 to 365"),
        ({"title": "A", "kind": "call", "role": "nurse", "due_days": -1}, "0 to 365"),
        ({"title": "A", "kind": "call", "role": "nurse", "due_days": "soon"}, "delay"),
        ({"title": "A", "kind": "call", "assignee": 999999, "due_days": 1}, "care team"),
    ],
)
def test_follow_up_actions_are_validated(
    record: Patient, action: dict[str, Any], message: str
) -> None:
    with pytest.raises(CareError, match=message):
        clean_actions(record.pk, [action])


def test_an_assignee_outside_the_care_team_is_refused(record: Patient, outsider: User) -> None:
    with pytest.raises(CareError, match="care team"):
        clean_actions(
            record.pk, [{"title": "A", "kind": "call", "assignee": outsider.pk, "due_days": 3}]
        )
    with pytest.raises(CareError):
        clean_actions(record.pk, "not a list")


def test_who_records_and_signs_a_decision(
    meeting: Meeting, case: MeetingCase, clinician: User, nurse: User, coordinator: User
) -> None:
    with pytest.raises(CareError, match="started"):
        do_record_decision(clinician, case, "Tôt", [])
    do_start_meeting(clinician, meeting)
    with pytest.raises(CareError, match="chair or the presenter"):
        do_record_decision(nurse, case, "Non", [])
    with pytest.raises(CareError, match="Write"):
        do_record_decision(clinician, case, "   ", [])
    decision = do_record_decision(clinician, case, "Chirurgie", [])
    again = do_record_decision(clinician, case, "Chirurgie puis radiothérapie", [])
    assert again.pk == decision.pk and MeetingDecision.objects.get().text.endswith("radiothérapie")
    writes = AuditEvent.objects.filter(
        object_type="care.meetingdecision", object_id=str(decision.pk)
    )
    assert list(writes.order_by("seq").values_list("action", flat=True)) == [
        Action.CREATE,
        Action.UPDATE,
    ]
    with pytest.raises(CareError, match="chair"):
        do_sign_decision(nurse, case)
    with pytest.raises(CareError, match="present"):
        do_sign_decision(clinician, case)  # nobody marked present yet
    do_record_attendance(clinician, meeting, [clinician.pk, coordinator.pk])
    signed = do_sign_decision(clinician, case)
    assert signed.is_signed and {a["id"] for a in signed.attendees} == {
        clinician.pk,
        coordinator.pk,
    }


def test_a_chair_without_record_access_cannot_sign(
    make_meeting: Callable[..., Meeting],
    clinician: User,
    outsider: User,
    record: Patient,
) -> None:
    meeting = make_meeting(chair=outsider, participants=[clinician])
    case = do_add_case(clinician, meeting, record.pk, "Avis ?")
    do_start_meeting(outsider, meeting)
    do_record_attendance(outsider, meeting, [outsider.pk, clinician.pk])
    do_record_decision(clinician, case, "Surveillance", [])
    with pytest.raises(CareError, match="access to this patient"):
        do_sign_decision(outsider, case)
    assert not MeetingDecision.objects.get(case=case).is_signed


def test_changes_reach_the_participants_live(
    meeting: Meeting, clinician: User, nurse: User, django_capture_on_commit_callbacks: Any
) -> None:
    def start() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            do_start_meeting(clinician, meeting)

    async def start_and_listen() -> dict[str, Any]:
        layer = get_channel_layer()
        listener = await layer.new_channel()
        await layer.group_add(user_group(nurse.pk), listener)
        await sync_to_async(start)()
        deadline = asyncio.get_running_loop().time() + 5
        try:
            while True:
                message = await asyncio.wait_for(
                    layer.receive(listener), timeout=deadline - asyncio.get_running_loop().time()
                )
                events = message.get("events") or [message.get("event")]
                for event in events:
                    if event and event["type"] == "care.meeting":
                        return dict(event)
        finally:
            await layer.group_discard(user_group(nurse.pk), listener)

    event = async_to_sync(start_and_listen)()
    assert event["meeting"] == meeting.pk and event["status"] == Meeting.Status.IN_PROGRESS
    assert event["url"] == f"/clinic/meetings/{meeting.pk}/" and event["case"] is None
