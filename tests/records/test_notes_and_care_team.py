"""Signed notes and amendments, observation annotations, and care-team changes."""

from __future__ import annotations

from collections.abc import Callable

from django.urls import reverse

from apps.accounts.models import Role, User
from apps.audit.models import AuditEvent
from apps.records.access import check_patient_access, get_patient_for_user
from apps.records.models import ClinicalNote, Observation, ObservationNote, Patient
from apps.records.services.clinical import signature_is_valid
from tests.conftest import signed_in_client, verified_client


def test_note_is_signed_and_amendment_keeps_the_original(record: Patient, clinician: User) -> None:
    client = verified_client(clinician)
    response = client.post(
        reverse("records:note_new", args=[record.pk]),
        {"kind": "progress", "title": "Contrôle", "text": "TA 150/95", "sensitivity": "normal"},
    )
    assert response.status_code == 302
    note = ClinicalNote.objects.get()
    assert signature_is_valid(note)
    assert AuditEvent.objects.filter(action="sign", object_id=str(note.pk)).exists()
    response = client.post(
        reverse("records:note_amend", args=[record.pk, note.pk]),
        {"text": "TA 135/85", "reason": "Erreur de saisie"},
    )
    assert response.status_code == 302
    note.refresh_from_db()
    amendment = ClinicalNote.objects.get(amends=note)
    assert note.status == "amended" and note.text == "TA 150/95"
    assert amendment.text == "TA 135/85" and signature_is_valid(amendment)
    page = client.get(reverse("records:notes", args=[record.pk])).content.decode()
    assert "TA 150/95" in page and "TA 135/85" in page and "Erreur de saisie" in page
    # amending an amended note is refused
    response = client.post(
        reverse("records:note_amend", args=[record.pk, note.pk]),
        {"text": "x", "reason": "y"},
    )
    assert response.status_code == 400


def test_note_text_is_encrypted_in_the_database(record: Patient, clinician: User) -> None:
    from django.db import connection

    access = get_patient_for_user(clinician, record.pk)
    from apps.records.services.clinical import do_write_note

    do_write_note(access, clinician, kind="progress", title="T", text="secret-marqueur-42")
    with connection.cursor() as cursor:
        cursor.execute("SELECT text FROM records_clinicalnote")
        raw = bytes(cursor.fetchone()[0])
    assert b"secret-marqueur-42" not in raw and raw.startswith(b"VH1")


def test_empty_note_is_a_form_error(record: Patient, clinician: User) -> None:
    response = verified_client(clinician).post(
        reverse("records:note_new", args=[record.pk]),
        {"kind": "progress", "title": "", "text": "", "sensitivity": "normal"},
    )
    assert response.status_code == 400
    assert not ClinicalNote.objects.exists()


def test_annotate_an_observation(
    record: Patient, clinician: User, patient: User, make_observation: Callable[..., Observation]
) -> None:
    observation = make_observation(record, value=110)
    assert observation.interpretation == "H"
    url = reverse("records:observation", args=[observation.pk])
    response = verified_client(clinician).post(url, {"text": "Effort juste avant la mesure"})
    assert response.status_code == 302
    assert ObservationNote.objects.get().text == "Effort juste avant la mesure"
    mine = signed_in_client(patient).get(reverse("records:my_observation", args=[observation.pk]))
    assert "Effort juste avant la mesure" in mine.content.decode()


def test_patient_cannot_annotate(
    record: Patient, patient: User, make_observation: Callable[..., Observation]
) -> None:
    observation = make_observation(record)
    url = reverse("records:my_observation", args=[observation.pk])
    signed_in_client(patient).post(url, {"text": "moi"})
    assert not ObservationNote.objects.exists()


def test_add_and_remove_care_team_member_grants_and_revokes_at_once(
    record: Patient, clinician: User, make_user: Callable[..., User]
) -> None:
    nurse = make_user(Role.NURSE, organization=clinician.organization)
    client = verified_client(clinician)
    url = reverse("records:care_team", args=[record.pk])
    assert client.post(url, {"user": nurse.pk}).status_code == 302
    assert check_patient_access(nurse, record.pk) is not None
    nurse_client = verified_client(nurse)
    assert nurse_client.get(reverse("records:chart", args=[record.pk])).status_code == 200
    member = record.care_teams.get().members.get(user=nurse, ended_at__isnull=True)
    assert client.post(url, {"remove": member.pk}).status_code == 302
    assert check_patient_access(nurse, record.pk) is None
    assert nurse_client.get(reverse("records:chart", args=[record.pk])).status_code == 404
    assert record in [p for p in Patient.objects.all()]


def test_my_patients_lists_only_my_care_teams(
    record: Patient,
    record2: Patient,
    outsider: User,
    clinician: User,
    make_patient: Callable[..., Patient],
) -> None:
    make_patient(family_name="Inconnu")
    page = verified_client(clinician).get(reverse("records:my_patients")).content.decode()
    assert record.family_name in page and record2.family_name in page and "Inconnu" not in page
    page = verified_client(outsider).get(reverse("records:my_patients")).content.decode()
    assert record.family_name not in page


def test_a_note_links_to_an_encounter_of_its_patient_only(
    record: Patient, record2: Patient, clinician: User
) -> None:
    import pytest
    from django.utils import timezone

    from apps.records.models import Encounter
    from apps.records.services import RecordError
    from apps.records.services.clinical import do_write_note

    def encounter_of(patient: Patient) -> Encounter:
        return Encounter.objects.create(
            patient=patient, status="finished", kind="VR", started_at=timezone.now()
        )

    access = get_patient_for_user(clinician, record.pk)
    own, other = encounter_of(record), encounter_of(record2)

    note = do_write_note(
        access, clinician, kind="progress", title="T", text="x", encounter_id=own.pk
    )
    assert note.encounter_id == own.pk and signature_is_valid(note)
    with pytest.raises(RecordError):
        do_write_note(
            access, clinician, kind="progress", title="T", text="x", encounter_id=other.pk
        )
    assert ClinicalNote.objects.count() == 1
