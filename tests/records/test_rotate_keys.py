"""`manage.py rotate_encryption_keys`: files and encrypted columns move to the newest key."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from PIL import Image
from pypdf import PdfWriter

from apps.accounts.models import User
from apps.core import crypto
from apps.records.access import get_patient_for_user
from apps.records.models import (
    ClinicalNote,
    DocumentReference,
    Observation,
    ObservationNote,
    Patient,
)
from apps.records.services.clinical import do_write_note
from apps.records.services.documents import do_upload_document, open_document


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path / "media"
    return tmp_path / "media"


def _pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=100, height=100)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (60, 40), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def old_data(record: Patient, clinician: User, make_observation: Any) -> dict[str, Any]:
    """A PDF, a photo (with thumbnail), a note and an annotation sealed with the current key."""
    access = get_patient_for_user(clinician, record.pk, action=None)
    pdf = do_upload_document(
        access,
        SimpleUploadedFile("letter.pdf", _pdf()),
        title="Letter",
        category="letter",
        sensitivity="normal",
    )
    photo = do_upload_document(
        access,
        SimpleUploadedFile("wound.png", _png()),
        title="Wound",
        category="photo",
        sensitivity="normal",
    )
    note = do_write_note(access, clinician, kind="progress", title="Note", text="Feels better.")
    observation: Observation = make_observation(record)
    annotation = ObservationNote.objects.create(
        observation=observation, author=clinician, text="Measured after a walk."
    )
    return {"pdf": pdf, "photo": photo, "note": note, "annotation": annotation}


def _raw(model: Any, pk: int, column: str = "text") -> bytes:
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return bytes(cursor.fetchone()[0])


def _file(media: Path, name: str) -> bytes:
    return (media / "records" / name).read_bytes()


def _rotate(*args: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    call_command("rotate_encryption_keys", *args, stdout=out, stderr=err)
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_rotation_moves_everything_to_the_new_key(
    settings: Any, old_data: dict[str, Any], _media: Path
) -> None:
    # given
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    old_id = crypto.current_key_id()
    pdf, photo = old_data["pdf"], old_data["photo"]
    before = {
        "pdf": _file(_media, pdf.storage_name),
        "thumb": _file(_media, photo.thumbnail_name),
        "note": _raw(ClinicalNote, old_data["note"].pk),
    }
    pdf_plain, thumb_plain = open_document(pdf), open_document(photo, thumbnail=True)
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    new_id = crypto.current_key_id()
    assert new_id != old_id
    # when
    summary = _rotate("--batch", "1")
    # then
    assert summary["documents"] == {
        "checked": 2,
        "files_resealed": 3,
        "missing": 0,
        "failed": 0,
        "failed_ids": [],
    }
    assert summary["fields"]["records.clinicalnote.text"]["resealed"] == 1
    assert summary["fields"]["records.observationnote.text"]["resealed"] == 1
    assert summary["failed"] == 0
    for doc in (pdf, photo):
        doc.refresh_from_db()
        assert doc.key_id == new_id
        assert crypto.key_id_for(_file(_media, doc.storage_name)) == new_id
    assert crypto.key_id_for(_file(_media, photo.thumbnail_name)) == new_id
    assert crypto.key_id_for(_raw(ClinicalNote, old_data["note"].pk)) == new_id
    assert crypto.key_id_for(_raw(ObservationNote, old_data["annotation"].pk)) == new_id
    # With the old key gone, the rotated data still opens and the old blobs no longer do.
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert open_document(pdf) == pdf_plain
    assert open_document(photo, thumbnail=True) == thumb_plain
    assert ClinicalNote.objects.get(pk=old_data["note"].pk).text == "Feels better."
    assert ObservationNote.objects.get().text == "Measured after a walk."
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(before["pdf"], context=pdf.storage_name.encode())
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(before["thumb"], context=photo.thumbnail_name.encode())
    with pytest.raises(crypto.DecryptionError):
        crypto.open_sealed(before["note"])


def test_signature_of_a_rotated_note_stays_valid(settings: Any, old_data: dict[str, Any]) -> None:
    from apps.records.services.clinical import signature_is_valid

    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    _rotate()
    assert signature_is_valid(ClinicalNote.objects.get(pk=old_data["note"].pk))


def test_dry_run_changes_nothing(settings: Any, old_data: dict[str, Any], _media: Path) -> None:
    pdf = old_data["pdf"]
    before = _file(_media, pdf.storage_name)
    note_before = _raw(ClinicalNote, old_data["note"].pk)
    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    summary = _rotate("--dry-run")
    assert summary["dry_run"] is True
    assert summary["documents"]["files_resealed"] == 3
    assert summary["fields"]["records.clinicalnote.text"]["resealed"] == 1
    assert _file(_media, pdf.storage_name) == before
    assert _raw(ClinicalNote, old_data["note"].pk) == note_before
    pdf.refresh_from_db()
    assert pdf.key_id != crypto.current_key_id()


def test_second_run_has_nothing_to_do(settings: Any, old_data: dict[str, Any]) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    _rotate()
    again = _rotate()
    assert again["documents"]["files_resealed"] == 0
    assert all(column["resealed"] == 0 for column in again["fields"].values())
    assert again["documents"]["checked"] == 2


def test_interrupted_run_is_finished_by_the_next(
    settings: Any, old_data: dict[str, Any], _media: Path
) -> None:
    # given: the file was rewritten but the row still names the old key (crash in between)
    pdf = old_data["pdf"]
    plain = open_document(pdf)
    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    path = _media / "records" / pdf.storage_name
    path.write_bytes(crypto.reseal(path.read_bytes(), context=pdf.storage_name.encode()))
    # when
    _rotate()
    # then
    pdf.refresh_from_db()
    assert pdf.key_id == crypto.current_key_id()
    assert open_document(pdf) == plain


def test_missing_or_unreadable_file_is_counted_and_fails_the_run(
    settings: Any, old_data: dict[str, Any], _media: Path
) -> None:
    (_media / "records" / old_data["pdf"].storage_name).unlink()
    settings.FIELD_ENCRYPTION_KEYS = [
        Fernet.generate_key().decode(),
        *settings.FIELD_ENCRYPTION_KEYS,
    ]
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("rotate_encryption_keys", stdout=out, stderr=io.StringIO())
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["documents"]["missing"] == 1
    assert summary["documents"]["failed_ids"] == [old_data["pdf"].pk]
    # The rest was still rotated.
    photo = DocumentReference.objects.get(pk=old_data["photo"].pk)
    assert photo.key_id == crypto.current_key_id()
