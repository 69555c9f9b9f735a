"""Messaging cast: the patients of tests/conftest.py with records, a care team of two
clinicians (`clinician`, the lead, and `colleague`), and a factory of conversations."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.accounts.models import Organization, Role, User
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Thread, Topic
from apps.messaging.services.threads import do_start_thread
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member


@pytest.fixture
def make_patient(db: None, organization: Organization) -> Callable[..., Patient]:
    counter = {"n": 0}

    def make(user: User | None = None, **fields: Any) -> Patient:
        counter["n"] += 1
        fields.setdefault("family_name", user.last_name if user else f"Patient{counter['n']}")
        fields.setdefault("given_names", user.first_name if user else "Test")
        fields.setdefault("birth_date", dt.date(1960, 3, counter["n"] % 28 + 1))
        fields.setdefault("sex", "female")
        fields.setdefault("organization", organization)
        return Patient.objects.create(user=user, **fields)

    return make


@pytest.fixture
def colleague(make_user: Callable[..., User], organization: Organization) -> User:
    """A nurse on the care team of `record` (with `clinician`, its lead)."""
    return make_user(Role.NURSE, email="nurse@example.test", organization=organization)


@pytest.fixture
def record(
    make_patient: Callable[..., Patient], patient: User, clinician: User, colleague: User
) -> Patient:
    """The record of `patient`; `clinician` (lead) and `colleague` are on its care team."""
    chart = make_patient(patient)
    team = default_team(chart)
    do_add_member(team, clinician, is_lead=True)
    do_add_member(team, colleague)
    return chart


@pytest.fixture
def record2(make_patient: Callable[..., Patient], patient2: User, clinician: User) -> Patient:
    """The record of `patient2`; only `clinician` is on its care team."""
    chart = make_patient(patient2)
    do_add_member(default_team(chart), clinician, is_lead=True)
    return chart


@pytest.fixture
def make_thread(record: Patient, patient: User) -> Callable[..., Thread]:
    """A conversation started by `author` (the patient by default) about `record`."""

    def make(
        author: User | None = None,
        *,
        topic: str = Topic.QUESTION,
        subject: str = "Question sur mon traitement",
        body: str = "Bonjour, puis-je prendre mon comprimé le soir ?",
        patient_record: Patient | None = None,
        **kwargs: Any,
    ) -> Thread:
        author = author or patient
        chart = patient_record or record
        return do_start_thread(
            author,
            topic=topic,
            subject=subject,
            body=body,
            patient_id=chart.pk,
            **kwargs,
        )

    return make


def access_for(user: User, thread: Thread) -> ThreadAccess:
    return ThreadAccess(thread, user)


def photo(name: str = "plaie.jpg", size: tuple[int, int] = (64, 48)) -> SimpleUploadedFile:
    """A small JPEG carrying EXIF data (a camera model), as a phone would send it."""
    from PIL import Image

    image = Image.new("RGB", size, (200, 80, 60))
    exif = Image.Exif()
    exif[0x0110] = "PhoneCam 3000"  # Model
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return SimpleUploadedFile(name, out.getvalue(), content_type="image/jpeg")
