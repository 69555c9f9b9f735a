"""A draft's lines may take over from current medications (a dose change): signing ends them;
a physician may also take a medication out of a draft before signing it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.records.access import get_patient_for_user
from apps.records.models import (
    DrugInteraction,
    Medication,
    MedicationStatement,
    Patient,
    Practitioner,
    Prescription,
)
from apps.records.services import RecordError
from apps.records.services.prescription_drafts import (
    do_create_draft,
    do_remove_draft_line,
    do_sign_draft,
    review_draft,
)
from apps.records.services.prescriptions import check_prescription, do_sign_prescription
from tests.conftest import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Services' messages in English (pages choose theirs by the client's cookie)."""
    with translation.override("en"):
        yield


@pytest.fixture
def drugs(medication: Callable[..., Medication]) -> dict[str, Medication]:
    return {
        "amlodipine": medication("Amlodipine 5 mg", "C08CA01"),
        "metformin": medication("Metformine 500 mg", "A10BA02"),
        "simvastatin": medication("Simvastatine 20 mg", "C10AA01"),
    }


def _client(user: User) -> Client:
    """Signed in (second factor passed), reading the pages in English."""
    client = verified_client(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def _access(user: User, patient: Patient) -> Any:
    return get_patient_for_user(user, patient.pk, action=None)


def _line(medication: Medication, dose: str = "1 cp", **extra: Any) -> dict[str, Any]:
    return {
        "medication": medication,
        "dose": dose,
        "frequency": 1,
        "duration_days": 90,
        "quantity": 3,
        **extra,
    }


@pytest.fixture
def current(
    record: Patient, clinician: User, practitioner: Practitioner, drugs: dict[str, Medication]
) -> Prescription:
    """Amlodipine and metformin, signed in the portal: two current medications."""
    return do_sign_prescription(
        _access(clinician, record),
        clinician,
        [_line(drugs["amlodipine"], "5 mg"), _line(drugs["metformin"], "500 mg")],
    )


def _statement(prescription: Prescription, medication: Medication) -> MedicationStatement:
    return MedicationStatement.objects.get(prescription=prescription, medication=medication)


def test_signing_ends_only_the_replaced_medication(
    record: Patient, clinician: User, current: Prescription, drugs: dict[str, Medication]
) -> None:
    # given a draft raising amlodipine to 10 mg, in place of the current 5 mg
    access = _access(clinician, record)
    old = _statement(current, drugs["amlodipine"])
    draft = do_create_draft(access, clinician, [_line(drugs["amlodipine"], "10 mg", replaces=old)])
    assert [line.replaces for line in review_draft(draft).replaced] == [old]

    # when it is signed
    signed = do_sign_draft(draft, access, clinician)

    # then the 5 mg is ended today, metformin goes on, and so does the old prescription
    old.refresh_from_db()
    assert old.status == MedicationStatement.Status.COMPLETED
    assert old.ended_on == timezone.localdate()
    assert _statement(current, drugs["metformin"]).status == MedicationStatement.Status.ACTIVE
    current.refresh_from_db()
    assert current.status == Prescription.Status.ACTIVE
    assert _statement(signed, drugs["amlodipine"]).dosage.startswith("10 mg")


def test_a_prescription_with_nothing_current_left_is_completed(
    record: Patient, clinician: User, current: Prescription, drugs: dict[str, Medication]
) -> None:
    access = _access(clinician, record)
    version = current.version
    lines = [
        _line(drugs[name], "2 cp", replaces=_statement(current, drugs[name]))
        for name in ("amlodipine", "metformin")
    ]
    do_sign_draft(do_create_draft(access, clinician, lines), access, clinician)
    current.refresh_from_db()
    assert current.status == Prescription.Status.COMPLETED
    assert current.version == version + 1  # its FHIR version follows the change


def test_the_replaced_medication_is_not_checked_against_its_successor(
    record: Patient, clinician: User, current: Prescription, drugs: dict[str, Medication]
) -> None:
    # amlodipine with simvastatin over 20 mg: an interaction (here as reference data)
    DrugInteraction.objects.create(
        atc_a="C08CA01", atc_b="C10AA01", severity="major", description="Myopathy risk"
    )
    old = _statement(current, drugs["amlodipine"])
    # adding simvastatin next to amlodipine warns
    assert check_prescription(record, [_line(drugs["simvastatin"])])
    # replacing amlodipine by simvastatin is refused (not the same drug) …
    with pytest.raises(RecordError, match="same drug"):
        do_create_draft(
            _access(clinician, record), clinician, [_line(drugs["simvastatin"], replaces=old)]
        )
    # … but a new amlodipine line is not checked against the one it replaces
    assert not check_prescription(record, [_line(drugs["amlodipine"], "10 mg", replaces=old)])


def test_a_line_cannot_replace_another_patients_medication(
    record: Patient,
    record2: Patient,
    clinician: User,
    current: Prescription,
    drugs: dict[str, Medication],
) -> None:
    old = _statement(current, drugs["amlodipine"])
    with pytest.raises(RecordError, match="same drug"):
        do_create_draft(
            _access(clinician, record2), clinician, [_line(drugs["amlodipine"], replaces=old)]
        )
    assert not Prescription.objects.filter(status=Prescription.Status.DRAFT).exists()


def test_an_ended_medication_is_not_ended_again(
    record: Patient, clinician: User, current: Prescription, drugs: dict[str, Medication]
) -> None:
    # given two drafts replacing the same 5 mg; the first is signed
    access = _access(clinician, record)
    old = _statement(current, drugs["amlodipine"])
    first = do_create_draft(access, clinician, [_line(drugs["amlodipine"], "10 mg", replaces=old)])
    second = do_create_draft(
        access, clinician, [_line(drugs["amlodipine"], "7.5 mg", replaces=old)]
    )
    do_sign_draft(first, access, clinician)
    ended_on = MedicationStatement.objects.get(pk=old.pk).ended_on

    # when the second is signed too, the page said it was already ended
    page = _client(clinician).get(reverse("records:prescription_draft", args=[second.pk]))
    assert "already ended" in page.content.decode()
    do_sign_draft(second, access, clinician)

    # then the 5 mg keeps its end, and the sign audit names nothing as replaced
    assert MedicationStatement.objects.get(pk=old.pk).ended_on == ended_on
    event = AuditEvent.objects.filter(action="sign").order_by("-seq").first()
    assert event is not None and "replaced" not in event.detail


def test_the_draft_page_names_what_signing_ends(
    record: Patient, clinician: User, current: Prescription, drugs: dict[str, Medication]
) -> None:
    access = _access(clinician, record)
    old = _statement(current, drugs["amlodipine"])
    draft = do_create_draft(access, clinician, [_line(drugs["amlodipine"], "10 mg", replaces=old)])
    page = _client(clinician).get(reverse("records:prescription_draft", args=[draft.pk]))
    html = page.content.decode()
    assert "Signing ends these current medications" in html
    assert current.number in html


# ---------------------------------------------------------------------------------------------
# Taking a medication out of a draft


def test_a_physician_removes_a_medication_from_a_draft(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    drugs: dict[str, Medication],
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, drugs["amlodipine"], drugs["metformin"])
    metformin = draft.items.get(medication=drugs["metformin"])
    client = _client(clinician)
    page = client.get(reverse("records:prescription_draft", args=[draft.pk])).content.decode()
    assert "Remove this medication from the draft" in page

    url = reverse("records:prescription_draft_line_remove", args=[draft.pk, metformin.pk])
    response = client.post(url)

    assert response.status_code == 302
    assert list(draft.items.values_list("medication__name", flat=True)) == ["Amlodipine 5 mg"]
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None and event.detail["prescription"] == "draft-line-removed"
    assert event.detail["medication"] == "A10BA02"
    # the last one stays: the draft is discarded instead
    last = draft.items.get()
    with pytest.raises(RecordError, match="discard the draft"):
        do_remove_draft_line(draft, _access(clinician, record), clinician, last.pk)
    page = client.get(reverse("records:prescription_draft", args=[draft.pk])).content.decode()
    assert "Remove this medication from the draft" not in page


def test_a_signed_prescriptions_lines_are_not_removed(
    record: Patient,
    clinician: User,
    practitioner: Practitioner,
    drugs: dict[str, Medication],
    make_draft: Callable[..., Prescription],
) -> None:
    draft = make_draft(record, drugs["amlodipine"], drugs["metformin"])
    access = _access(clinician, record)
    do_sign_draft(draft, access, clinician)
    line = draft.items.first()
    assert line is not None
    with pytest.raises(RecordError, match="no longer a draft"):
        do_remove_draft_line(draft, access, clinician, line.pk)
    assert draft.items.count() == 2


@pytest.mark.parametrize("who", ["outsider", "patient"])
def test_outsider_cannot_remove_a_line(
    who: str,
    record: Patient,
    clinician: User,
    drugs: dict[str, Medication],
    make_draft: Callable[..., Prescription],
    request: pytest.FixtureRequest,
) -> None:
    draft = make_draft(record, drugs["amlodipine"], drugs["metformin"])
    line = draft.items.first()
    assert line is not None
    user = request.getfixturevalue(who)
    url = reverse("records:prescription_draft_line_remove", args=[draft.pk, line.pk])
    response = _client(user).post(url)
    assert response.status_code == 404
    assert draft.items.count() == 2
    assert AuditEvent.objects.filter(
        actor_id=user.pk, outcome="denied", object_type="records.prescription"
    ).exists()
