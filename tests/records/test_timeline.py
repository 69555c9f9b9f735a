"""The timeline is read from the record itself, filterable, paginated, in both portals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.records.access import get_patient_for_user
from apps.records.models import Condition, Observation, Patient
from apps.records.services.clinical import do_write_note
from apps.records.timeline import timeline_page
from tests.conftest import signed_in_client, verified_client


def test_entries_come_from_the_record_newest_first(
    record: Patient,
    record2: Patient,
    clinician: User,
    make_observation: Callable[..., Observation],
    concept: Callable[..., Any],
) -> None:
    now = timezone.now()
    make_observation(record, value=80, effective_at=now - dt.timedelta(days=2))
    make_observation(record2, value=99, effective_at=now)
    Condition.objects.create(
        patient=record,
        code=concept(
            "I10",
            system="http://hl7.org/fhir/sid/icd-10",
            display="Essential hypertension",
            category="problem",
        ),
        recorded_at=now - dt.timedelta(days=1),
    )
    access = get_patient_for_user(clinician, record.pk)
    do_write_note(access, clinician, kind="progress", title="Appel", text="ok")
    _page, entries = timeline_page(access)
    assert [e.kind for e in entries] == ["note", "condition", "observation"]
    assert all("99" not in e.detail for e in entries)


def test_filter_by_kind_and_dates(
    record: Patient, clinician: User, make_observation: Callable[..., Observation]
) -> None:
    today = timezone.localdate()
    for days in range(5):
        make_observation(
            record, value=70 + days, effective_at=timezone.now() - dt.timedelta(days=days)
        )
    access = get_patient_for_user(clinician, record.pk)
    do_write_note(access, clinician, kind="progress", title="Appel", text="ok")
    _page, entries = timeline_page(access, kinds_wanted=["observation"])
    assert len(entries) == 5 and {e.kind for e in entries} == {"observation"}
    _page, entries = timeline_page(
        access, since=today - dt.timedelta(days=1), until=today, kinds_wanted=["observation"]
    )
    assert len(entries) == 2
    response = verified_client(clinician).get(
        reverse("records:timeline", args=[record.pk]), {"kind": "note"}
    )
    assert "Appel" in response.content.decode()


def test_pagination(
    record: Patient, clinician: User, make_observation: Callable[..., Observation]
) -> None:
    for n in range(35):
        make_observation(record, value=60 + n)
    access = get_patient_for_user(clinician, record.pk)
    page, entries = timeline_page(access, page=2, per_page=30)
    assert page.paginator.count == 35 and len(entries) == 5


def test_patient_sees_timeline_without_staff_notes(
    record: Patient, clinician: User, patient: User, make_observation: Callable[..., Observation]
) -> None:
    make_observation(record)
    access = get_patient_for_user(clinician, record.pk)
    do_write_note(access, clinician, kind="progress", title="Note interne", text="ok")
    page = signed_in_client(patient).get(reverse("records:my_timeline")).content.decode()
    assert "Note interne" not in page
    assert "/record/observations/" in page
