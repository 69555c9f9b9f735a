"""`do_create_draft` (records): a draft for the patient from given lines, for a physician of the
care team, audited, and shown on the records draft page to sign or discard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.records.models import Medication, Patient, Prescription
from apps.records.services import RecordError
from apps.records.services.prescription_drafts import do_create_draft
from tests.care.helpers import client_for

from ..conftest import access_as


def line(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "medication": Medication.objects.get(name=name),
        "dose": "5 mg",
        "frequency": 1,
        "duration_days": 30,
        "quantity": 1,
        **fields,
    }


def test_a_physician_gets_a_draft_to_sign(
    reference: None, record: Patient, clinician: User, practitioner: Any
) -> None:
    draft = do_create_draft(access_as(clinician, record), clinician, [line("Amlodipine 5 mg cp")])
    assert draft.status == Prescription.Status.DRAFT and draft.number.startswith("DRAFT-")
    assert [item.medication.name for item in draft.items.all()] == ["Amlodipine 5 mg cp"]
    event = AuditEvent.objects.get(
        action=Action.CREATE, object_type="records.prescription", object_id=str(draft.pk)
    )
    assert event.actor_id == clinician.pk and event.detail["medications"] == ["C08CA01"]
    page = client_for(clinician).get(f"/prescriptions/{draft.pk}/draft/")
    assert page.status_code == 200
    assert "Amlodipine 5 mg cp" in page.content.decode()


def test_only_physicians_of_the_team_draft(reference: None, record: Patient, nurse: User) -> None:
    with pytest.raises(RecordError, match="physician"):
        do_create_draft(access_as(nurse, record), nurse, [line("Amlodipine 5 mg cp")])
    assert not Prescription.objects.exists()


@pytest.mark.parametrize(
    "bad",
    [[], [{"medication": None, "dose": "1"}], "incomplete"],
    ids=["no-line", "no-medication", "no-dose"],
)
def test_incomplete_lines_are_refused(
    reference: None, record: Patient, clinician: User, bad: Any, make_user: Callable[..., Any]
) -> None:
    if bad == "incomplete":
        bad = [line("Amlodipine 5 mg cp", dose="")]
    with pytest.raises(RecordError):
        do_create_draft(access_as(clinician, record), clinician, bad)
    assert not Prescription.objects.exists()
