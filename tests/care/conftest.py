"""Care-coordination cast: the patients of tests/conftest.py with records; a care team of a
physician (`clinician`, the lead), a nurse (`nurse`) and a care coordinator (`coordinator`);
`record2` with only `clinician`; and small factories (`make_task`, `make_plan`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.utils import translation

from apps.accounts.models import Organization, Role, User
from apps.care.models import CarePlan, Task
from apps.care.services.tasks import do_create_task
from apps.records.access import PatientAccess, get_patient_for_user
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from tests.care.helpers import Listener


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Services' messages read in English here (the catalogues translate them into French, the
    default language); pages choose their language by the client's cookie."""
    with translation.override("en"):
        yield


@pytest.fixture
def make_patient(db: None, organization: Organization) -> Callable[..., Patient]:
    counter = {"n": 0}

    def make(user: User | None = None, **fields: Any) -> Patient:
        counter["n"] += 1
        fields.setdefault("family_name", user.last_name if user else f"Patient{counter['n']}")
        fields.setdefault("given_names", user.first_name if user else "Test")
        fields.setdefault("birth_date", dt.date(1958, 5, counter["n"] % 28 + 1))
        fields.setdefault("sex", "female")
        fields.setdefault("organization", organization)
        return Patient.objects.create(user=user, **fields)

    return make


@pytest.fixture
def nurse(make_user: Callable[..., User], organization: Organization) -> User:
    return make_user(Role.NURSE, email="nurse@example.test", organization=organization)


@pytest.fixture
def coordinator(make_user: Callable[..., User], organization: Organization) -> User:
    return make_user(Role.COORDINATOR, email="coordinator@example.test", organization=organization)


@pytest.fixture
def record(
    make_patient: Callable[..., Patient],
    patient: User,
    clinician: User,
    nurse: User,
    coordinator: User,
) -> Patient:
    """The record of `patient`; `clinician` (lead), `nurse`, `coordinator` on its care team."""
    chart = make_patient(patient)
    team = default_team(chart)
    do_add_member(team, clinician, is_lead=True)
    do_add_member(team, nurse)
    do_add_member(team, coordinator)
    return chart


@pytest.fixture
def record2(make_patient: Callable[..., Patient], patient2: User, clinician: User) -> Patient:
    """The record of `patient2`; only `clinician` is on its care team."""
    chart = make_patient(patient2)
    do_add_member(default_team(chart), clinician, is_lead=True)
    return chart


def access_as(user: User, chart: Patient) -> PatientAccess:
    """`user`'s access to `chart` (no audit row), for calling services directly."""
    return get_patient_for_user(user, chart.pk, action=None)


@pytest.fixture
def make_task(record: Patient, clinician: User, nurse: User) -> Callable[..., Task]:
    """A task asked by `clinician` (by default) of `nurse` about `record`."""

    def make(by: User | None = None, chart: Patient | None = None, **fields: Any) -> Task:
        fields.setdefault("kind", Task.Kind.CALL)
        fields.setdefault("title", "Appeler la patiente pour le suivi")
        if "assignee_role" not in fields:
            fields.setdefault("assignee", nurse)
        return do_create_task(access_as(by or clinician, chart or record), **fields)

    return make


@pytest.fixture
def make_plan(record: Patient, coordinator: User) -> Callable[..., CarePlan]:
    """A care plan of `record` written from scratch (no pathway)."""

    def make(chart: Patient | None = None, **fields: Any) -> CarePlan:
        fields.setdefault("title", "Suivi à domicile")
        fields.setdefault("created_by", coordinator)
        fields.setdefault("coordinator", coordinator)
        return CarePlan.objects.create(patient=chart or record, **fields)

    return make


@pytest.fixture
def listen() -> Callable[[User], Listener]:
    """A listener of what a user's open pages receive (live events)."""
    return Listener
