"""The admin lists meetings read-only, without the cases' questions, summaries or decisions."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.care.models import Meeting, MeetingCase
from apps.care.services.meeting_decisions import do_record_decision
from apps.care.services.meetings import do_start_meeting, do_update_summary
from tests.conftest import verified_client

SECRET = "SECRET-91c2"


@pytest.mark.parametrize("path", ["/admin/care/meeting/", "/admin/care/meeting/{pk}/change/"])
def test_admin_shows_meetings_without_clinical_content(
    path: str, meeting: Meeting, case: MeetingCase, clinician: User, admin_user: User
) -> None:
    do_update_summary(clinician, case, f"{SECRET} résumé", question=f"{SECRET} question")
    do_start_meeting(clinician, meeting)
    do_record_decision(clinician, case, f"{SECRET} décision", [])
    response = verified_client(admin_user).get(path.format(pk=meeting.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert meeting.title in html
    assert SECRET not in html and case.patient.family_name not in html
    # Read-only: no save button, no add link.
    assert 'name="_save"' not in html and "/admin/care/meeting/add/" not in html


def test_opening_a_meeting_in_the_admin_is_audited(meeting: Meeting, admin_user: User) -> None:
    verified_client(admin_user).get(f"/admin/care/meeting/{meeting.pk}/change/")
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    assert (event.object_type, event.object_id) == ("care.meeting", str(meeting.pk))
