"""Documents and photos: what is accepted, how it is stored, and who may read it."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import translation
from PIL import Image
from pypdf import PdfWriter
from pypdf.actions import JavaScript

from apps.accounts.models import Role, User
from apps.audit.models import AuditEvent
from apps.core import crypto
from apps.notifications.models import Notification
from apps.records.access import Level, PatientAccess, get_patient_for_user
from apps.records.models import DocumentReference, Patient
from apps.records.services import RecordError
from apps.records.services import documents as documents_service
from apps.records.services.care_team import (
    current_members,
    default_team,
    do_add_member,
    do_remove_member,
)
from apps.records.services.documents import do_upload_document, open_document, sanitize_filename
from tests.conftest import signed_in_client as portal_client
from tests.conftest import verified_client as clinic_client

MARKER = b"MARKER7f3aConfidentialLetter"


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Iterator[Path]:
    settings.MEDIA_ROOT = tmp_path / "media"
    # Messages are checked in English, whatever the catalogues say.
    with translation.override("en"):
        yield tmp_path / "media"


def verified_client(user: User) -> Client:
    client = clinic_client(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def signed_in_client(user: User) -> Client:
    client = portal_client(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


def pdf_bytes(title: bytes = MARKER) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_metadata({"/Title": title.decode()})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def image_bytes(fmt: str = "JPEG", size: tuple[int, int] = (40, 20), exif: Any = None) -> bytes:
    out = io.BytesIO()
    mode = "RGBA" if fmt == "PNG" else "RGB"
    extra = {"exif": exif} if exif is not None else {}
    Image.new(mode, size, (200, 30, 30, 255)[: len(mode)]).save(out, fmt, **extra)
    return out.getvalue()


def gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    exif[0x8825] = {1: "N", 2: (46.0, 31.0, 12.5), 3: "E", 4: (6.0, 38.0, 0.0)}
    return exif


def upload_file(name: str, content: bytes, content_type: str = "application/pdf") -> Any:
    upload = SimpleUploadedFile("x", content, content_type=content_type)
    upload._name = name  # type: ignore[attr-defined]  # as a hostile client could send it, before Django's own clean-up
    return upload


def staff_access(record: Patient, clinician: User) -> PatientAccess:
    return get_patient_for_user(clinician, record.pk, action=None)


def upload(access: PatientAccess, name: str, content: bytes, **fields: Any) -> DocumentReference:
    fields.setdefault("title", "Discharge letter")
    fields.setdefault("category", "letter")
    fields.setdefault("sensitivity", "normal")
    return do_upload_document(access, upload_file(name, content), request=None, **fields)


def stored_files(media: Path) -> list[Path]:
    return sorted(p for p in media.rglob("*") if p.is_file())


@pytest.fixture
def document(record: Patient, clinician: User) -> DocumentReference:
    return upload(staff_access(record, clinician), "letter.pdf", pdf_bytes())


@pytest.fixture
def photo(record: Patient, clinician: User) -> DocumentReference:
    return upload(
        staff_access(record, clinician),
        "wound.jpg",
        image_bytes(exif=gps_exif()),
        title="Wound",
        category="photo",
    )


def _pdf_with_javascript() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_open_action(JavaScript("app.alert('hi');"))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pdf_with_attachment() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.add_attachment("payload.exe", b"MZ\x90\x00 not really")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _raw_pdf(catalog_extra: bytes) -> bytes:
    """A one-page PDF written by hand, with `catalog_extra` inside the catalogue dictionary."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R " + catalog_extra + b" >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


SCRIPT = "scripts, automatic actions or embedded files"
NOT_A_TYPE = "Only PDF documents and JPEG or PNG pictures"
MISMATCH = "does not match its content"
REJECTED: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "png-named-pdf": ("scan.pdf", lambda: image_bytes("PNG"), MISMATCH),
    "jpeg-named-png": ("photo.png", lambda: image_bytes("JPEG"), MISMATCH),
    "pdf-named-jpg": ("photo.jpg", pdf_bytes, MISMATCH),
    "no-extension": ("letter", pdf_bytes, MISMATCH),
    "rtl-override-hides-exe": ("photo\u202egnp.exe", lambda: image_bytes("PNG"), MISMATCH),
    "html-named-pdf": (
        "letter.pdf",
        lambda: b"<html><body><script>alert(1)</script></body></html>",
        NOT_A_TYPE,
    ),
    "svg-with-script": (
        "drawing.svg",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        NOT_A_TYPE,
    ),
    "svg-named-png": (
        "drawing.png",
        lambda: b"<?xml version='1.0'?><svg><script>x</script></svg>",
        NOT_A_TYPE,
    ),
    "executable": ("report.pdf", lambda: b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64, NOT_A_TYPE),
    "shell-script": ("run.pdf", lambda: b"#!/bin/sh\nrm -rf /\n", NOT_A_TYPE),
    "pdf-html-polyglot": (
        "letter.pdf",
        lambda: b"%PDF-1.4\n<html><script>alert(document.cookie)</script></html>\n%%EOF",
        "web page or script code",
    ),
    "png-with-trailing-zip": (
        "scan.png",
        lambda: image_bytes("PNG") + b"PK\x03\x04payload",
        "other data after its end",
    ),
    "broken-pdf": ("letter.pdf", lambda: b"%PDF-1.7\nthis is not a pdf at all\n", "cannot be read"),
    "truncated-png": ("scan.png", lambda: image_bytes("PNG")[:40], "cannot be read"),
    "truncated-jpeg": ("photo.jpg", lambda: image_bytes("JPEG")[:200], "cannot be read"),
    "pdf-with-javascript": ("letter.pdf", _pdf_with_javascript, SCRIPT),
    "pdf-with-attachment": ("letter.pdf", _pdf_with_attachment, SCRIPT),
    # Names written with #xx escapes hide from a byte search, not from the parser.
    "pdf-with-escaped-javascript": (
        "letter.pdf",
        lambda: _raw_pdf(b"/OpenAction << /S /J#61vaScript /J#53 (app.alert(1)) >>"),
        SCRIPT,
    ),
    "pdf-with-launch-action": (
        "letter.pdf",
        lambda: _raw_pdf(b"/OpenAction << /S /L#61unch /F (cmd.exe) >>"),
        SCRIPT,
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_upload_is_refused_and_nothing_is_stored(
    case: str, record: Patient, clinician: User, _media: Path
) -> None:
    name, make, reason = REJECTED[case]
    # when
    with pytest.raises(RecordError, match=reason):
        upload(staff_access(record, clinician), name, make())
    # then
    assert not DocumentReference.objects.exists()
    assert stored_files(_media) == []


def test_hand_written_pdf_without_actions_is_accepted(record: Patient, clinician: User) -> None:
    content = _raw_pdf(b"/OpenAction [3 0 R /Fit]")
    doc = upload(staff_access(record, clinician), "letter.pdf", content)
    assert open_document(doc) == content


def test_empty_file_is_refused(record: Patient, clinician: User) -> None:
    with pytest.raises(RecordError, match="empty"):
        upload(staff_access(record, clinician), "letter.pdf", b"")


def test_oversized_file_is_refused(
    settings: Any, record: Patient, clinician: User, _media: Path
) -> None:
    settings.RECORDS_MAX_UPLOAD_BYTES = 100
    with pytest.raises(RecordError, match="too large"):
        upload(staff_access(record, clinician), "letter.pdf", pdf_bytes())
    assert stored_files(_media) == []


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd.png", "passwd.png"),
        ("..\\..\\Windows\\System32\\evil.pdf", "evil.pdf"),
        ("re\x00po\rrt\n\x1b[31m.pdf", "report[31m.pdf"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),
        ("\u2066scan\u2069 \u200bfinal.PDF", "scan final.pdf"),
        ('a<b>c:"d|e?f*.pdf', "a_b_c__d_e_f_.pdf"),
        ("...", "document"),
        ("x" * 300 + ".pdf", "x" * 116 + ".pdf"),
    ],
)
def test_file_names_are_sanitised(given: str, expected: str) -> None:
    assert sanitize_filename(given) == expected


def test_path_traversal_name_stays_a_display_name(
    record: Patient, clinician: User, _media: Path, tmp_path: Path
) -> None:
    # when
    doc = upload(staff_access(record, clinician), "../../etc/passwd.png", image_bytes("PNG"))
    # then
    assert doc.filename == "passwd.png"
    files = stored_files(_media)
    assert {f.parent for f in files} == {_media / "records"}
    assert {f.name for f in files} == {doc.storage_name, doc.thumbnail_name}
    assert "passwd" not in doc.storage_name
    assert not (tmp_path / "etc").exists()


def test_control_characters_are_removed_from_the_name(record: Patient, clinician: User) -> None:
    doc = upload(staff_access(record, clinician), "lab\r\nres\u202eults\x07.pdf", pdf_bytes())
    assert doc.filename == "labresults.pdf"


@pytest.mark.parametrize(
    ("name", "make", "content_type"),
    [
        ("letter.pdf", pdf_bytes, "application/pdf"),
        ("photo.JPEG", lambda: image_bytes("JPEG"), "image/jpeg"),
        ("photo.jpg", lambda: image_bytes("JPEG"), "image/jpeg"),
        ("scan.png", lambda: image_bytes("PNG"), "image/png"),
    ],
)
def test_accepted_files_are_stored_encrypted(
    name: str,
    make: Callable[[], bytes],
    content_type: str,
    record: Patient,
    clinician: User,
    _media: Path,
) -> None:
    # given
    content = make()
    # when
    doc = upload(staff_access(record, clinician), name, content)
    # then
    assert doc.content_type == content_type
    on_disk = (_media / "records" / doc.storage_name).read_bytes()
    plain = open_document(doc)
    assert on_disk != plain and plain not in on_disk
    assert doc.size == len(plain)
    assert doc.sha256 == hashlib.sha256(plain).hexdigest()
    assert doc.key_id == crypto.key_id_for(on_disk) == crypto.current_key_id()
    assert doc.recorded_by == clinician
    assert bool(doc.thumbnail_name) == content_type.startswith("image/")
    if content_type == "application/pdf":
        assert plain == content


def test_pdf_marker_is_not_readable_on_disk(document: DocumentReference, _media: Path) -> None:
    on_disk = (_media / "records" / document.storage_name).read_bytes()
    assert MARKER not in on_disk
    assert MARKER in open_document(document)


def test_photo_loses_exif_and_gps_but_keeps_its_orientation(photo: DocumentReference) -> None:
    cleaned = Image.open(io.BytesIO(open_document(photo)))
    assert cleaned.format == "JPEG"
    assert not cleaned.getexif()
    assert "exif" not in cleaned.info
    assert b"SpyCam" not in open_document(photo)
    # The 40×20 picture was tagged "rotate 90°": it is stored upright, 20×40.
    assert cleaned.size == (20, 40)


def test_photo_thumbnail_is_small_and_encrypted(
    record: Patient, clinician: User, _media: Path
) -> None:
    doc = upload(staff_access(record, clinician), "big.png", image_bytes("PNG", size=(1000, 500)))
    thumb = Image.open(io.BytesIO(open_document(doc, thumbnail=True)))
    assert max(thumb.size) <= 320 and thumb.size == (320, 160)
    on_disk = (_media / "records" / doc.thumbnail_name).read_bytes()
    assert crypto.key_id_for(on_disk) == doc.key_id


def test_staff_upload_is_audited_and_notifies_the_patient(
    document: DocumentReference, record: Patient, patient: User
) -> None:
    event = AuditEvent.objects.filter(action="create", object_id=str(document.pk)).get()
    assert event.patient_id == str(record.pk)
    note = Notification.objects.get(user=patient)
    assert note.kind == "record"
    assert note.link == reverse("records:my_documents")
    assert "Discharge" not in note.title and "letter" not in note.title.lower()


def test_patient_upload_is_normal_and_notifies_nobody(record: Patient, patient: User) -> None:
    access = get_patient_for_user(patient, record.pk, action=None)
    doc = upload(access, "wound.jpg", image_bytes(), category="photo", sensitivity="mental_health")
    assert doc.sensitivity == "normal" and doc.recorded_by == patient
    assert not Notification.objects.exists()


def test_billing_cannot_upload(record: Patient, billing_user: User) -> None:
    access = get_patient_for_user(billing_user, record.pk, need=Level.ADMINISTRATIVE, action=None)
    with pytest.raises(RecordError):
        upload(access, "letter.pdf", pdf_bytes())


def test_files_are_removed_when_the_database_write_fails(
    record: Patient, clinician: User, _media: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_audit(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database unavailable")

    monkeypatch.setattr(documents_service, "audit", broken_audit)
    with pytest.raises(RuntimeError):
        upload(staff_access(record, clinician), "scan.png", image_bytes("PNG"))
    assert stored_files(_media) == []
    assert not DocumentReference.objects.exists()


# ---------------------------------------------------------------------------------------------
# Pages and downloads


def test_download_headers_and_bytes(photo: DocumentReference, clinician: User) -> None:
    response = verified_client(clinician).get(reverse("records:document_download", args=[photo.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "wound.jpg" in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]
    assert response.content == open_document(photo)


def test_non_ascii_file_name_uses_rfc_6266(record: Patient, clinician: User) -> None:
    doc = upload(staff_access(record, clinician), "lettre-de-sortie-été.pdf", pdf_bytes())
    response = verified_client(clinician).get(reverse("records:document_download", args=[doc.pk]))
    assert "filename*=utf-8''lettre-de-sortie-%C3%A9t%C3%A9.pdf" in response["Content-Disposition"]


def test_thumbnail_is_inline_but_not_cached(photo: DocumentReference, patient: User) -> None:
    response = signed_in_client(patient).get(reverse("records:document_thumbnail", args=[photo.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Content-Disposition"].startswith("inline;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in response["Cache-Control"]


def test_pdf_has_no_thumbnail(document: DocumentReference, clinician: User) -> None:
    url = reverse("records:document_thumbnail", args=[document.pk])
    assert verified_client(clinician).get(url).status_code == 404


def _client_for(who: str, users: dict[str, User], record: Patient, make_user: Any) -> Any:
    if who == "removed":
        nurse = make_user(Role.NURSE, organization=users["clinician"].organization)
        do_add_member(default_team(record), nurse)
        member = next(m for m in current_members(record) if m.user_id == nurse.pk)
        do_remove_member(member)
        return verified_client(nurse)
    if who == "patient2":
        return signed_in_client(users["patient2"])
    return verified_client(users[who])


@pytest.mark.parametrize("view", ["document_download", "document_thumbnail"])
@pytest.mark.parametrize("who", ["patient2", "outsider", "removed", "billing_user", "admin_user"])
def test_others_get_404_and_a_denial_row(
    view: str,
    who: str,
    photo: DocumentReference,
    record: Patient,
    record2: Patient,
    clinician: User,
    patient2: User,
    outsider: User,
    billing_user: User,
    admin_user: User,
    make_user: Any,
) -> None:
    users = {
        "clinician": clinician,
        "patient2": patient2,
        "outsider": outsider,
        "billing_user": billing_user,
        "admin_user": admin_user,
    }
    client = _client_for(who, users, record, make_user)
    response = client.get(reverse(f"records:{view}", args=[photo.pk]))
    assert response.status_code == 404
    assert photo.title.encode() not in response.content
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None and event.action == "denied" and event.outcome == "denied"
    assert event.object_id == str(photo.pk)


def test_unknown_document_is_a_404_with_a_denial_row(clinician: User, record: Patient) -> None:
    response = verified_client(clinician).get(reverse("records:document_download", args=[999999]))
    assert response.status_code == 404
    assert AuditEvent.objects.order_by("-seq").first().action == "denied"  # type: ignore[union-attr]


@pytest.mark.parametrize("who", ["clinician", "patient"])
def test_rightful_readers_download_and_are_audited(
    who: str, document: DocumentReference, clinician: User, patient: User
) -> None:
    user = clinician if who == "clinician" else patient
    client = verified_client(user) if who == "clinician" else signed_in_client(user)
    response = client.get(reverse("records:document_download", args=[document.pk]))
    assert response.status_code == 200
    assert response.content == open_document(document)
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None and event.action == "read" and event.actor_id == user.pk
    assert event.object_id == str(document.pk)


def test_sensitive_document_is_hidden_from_a_nurse_on_the_team(
    record: Patient, clinician: User, make_user: Any
) -> None:
    # given
    nurse = make_user(Role.NURSE, organization=clinician.organization)
    do_add_member(default_team(record), nurse)
    secret = upload(
        staff_access(record, clinician),
        "psy.pdf",
        pdf_bytes(),
        title="Psychiatric assessment",
        sensitivity="mental_health",
    )
    upload(staff_access(record, clinician), "ordinary.pdf", pdf_bytes(), title="Ordinary letter")
    client = verified_client(nurse)
    # when
    listing = client.get(reverse("records:documents", args=[record.pk]))
    download = client.get(reverse("records:document_download", args=[secret.pk]))
    # then
    assert listing.status_code == 200
    assert "Ordinary letter" in listing.content.decode()
    assert "Psychiatric assessment" not in listing.content.decode()
    assert download.status_code == 404
    assert AuditEvent.objects.order_by("-seq").first().action == "denied"  # type: ignore[union-attr]
    physician_page = verified_client(clinician).get(reverse("records:documents", args=[record.pk]))
    assert "Psychiatric assessment" in physician_page.content.decode()


def test_clinic_list_shows_thumbnails_and_filters(
    photo: DocumentReference, document: DocumentReference, record: Patient, clinician: User
) -> None:
    client = verified_client(clinician)
    url = reverse("records:documents", args=[record.pk])
    page = client.get(url).content.decode()
    assert reverse("records:document_thumbnail", args=[photo.pk]) in page
    assert reverse("records:document_download", args=[document.pk]) in page
    filtered = client.get(url, {"category": "photo"}).content.decode()
    assert "Wound" in filtered and "Discharge letter" not in filtered
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None and event.action == "read" and event.actor_id == clinician.pk


def test_patient_portal_list(document: DocumentReference, patient: User) -> None:
    response = signed_in_client(patient).get(reverse("records:my_documents"))
    assert response.status_code == 200
    assert "Discharge letter" in response.content.decode()
    assert reverse("records:my_document_upload") in response.content.decode()


@pytest.mark.parametrize("who", ["outsider", "billing_user"])
def test_list_denied_to_others(
    who: str, record: Patient, outsider: User, billing_user: User
) -> None:
    user = outsider if who == "outsider" else billing_user
    response = verified_client(user).get(reverse("records:documents", args=[record.pk]))
    assert response.status_code == 404
    assert AuditEvent.objects.order_by("-seq").first().action == "denied"  # type: ignore[union-attr]


def test_patients_cannot_use_clinic_addresses(record: Patient, patient: User) -> None:
    client = signed_in_client(patient)
    assert client.get(reverse("records:documents", args=[record.pk])).status_code == 404
    assert client.get(reverse("records:document_upload", args=[record.pk])).status_code == 404


def test_staff_upload_page(record: Patient, clinician: User) -> None:
    client = verified_client(clinician)
    url = reverse("records:document_upload", args=[record.pk])
    assert client.get(url).status_code == 200
    response = client.post(
        url,
        {
            "title": "Letter",
            "category": "letter",
            "sensitivity": "normal",
            "file": SimpleUploadedFile("letter.pdf", pdf_bytes(), "application/pdf"),
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("records:documents", args=[record.pk])
    assert DocumentReference.objects.get().title == "Letter"


def test_upload_page_shows_the_error_and_stores_nothing(
    record: Patient, clinician: User, _media: Path
) -> None:
    response = verified_client(clinician).post(
        reverse("records:document_upload", args=[record.pk]),
        {
            "title": "Letter",
            "category": "letter",
            "sensitivity": "normal",
            "file": SimpleUploadedFile("letter.pdf", b"<html><script>x</script>", "text/html"),
        },
    )
    assert response.status_code == 400
    assert "Only PDF documents and JPEG or PNG pictures" in response.content.decode()
    assert not DocumentReference.objects.exists()
    assert stored_files(_media) == []


def test_nurse_cannot_pick_a_category_her_role_may_not_see(
    record: Patient, clinician: User, make_user: Any
) -> None:
    nurse = make_user(Role.NURSE, organization=clinician.organization)
    do_add_member(default_team(record), nurse)
    response = verified_client(nurse).post(
        reverse("records:document_upload", args=[record.pk]),
        {
            "title": "Letter",
            "category": "letter",
            "sensitivity": "mental_health",
            "file": SimpleUploadedFile("letter.pdf", pdf_bytes(), "application/pdf"),
        },
    )
    assert response.status_code == 400
    assert not DocumentReference.objects.exists()


def test_patient_uploads_a_photo_from_the_portal(record: Patient, patient: User) -> None:
    client = signed_in_client(patient)
    url = reverse("records:my_document_upload")
    page = client.get(url).content.decode()
    assert 'name="sensitivity"' not in page
    response = client.post(
        url,
        {
            "title": "My ankle",
            "category": "photo",
            "sensitivity": "mental_health",
            "file": SimpleUploadedFile("ankle.jpg", image_bytes(exif=gps_exif()), "image/jpeg"),
        },
    )
    assert response.status_code == 302
    doc = DocumentReference.objects.get()
    assert doc.patient == record and doc.sensitivity == "normal" and doc.recorded_by == patient


def test_billing_cannot_open_the_upload_page(record: Patient, billing_user: User) -> None:
    response = verified_client(billing_user).get(
        reverse("records:document_upload", args=[record.pk])
    )
    assert response.status_code == 404


def test_png_text_chunks_are_dropped(record: Patient, clinician: User) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Author", "Jeanne Patient, 12 rue du Lac, Lausanne")
    out = io.BytesIO()
    Image.new("RGB", (30, 30), (0, 90, 0)).save(out, "PNG", pnginfo=info)
    doc = upload(staff_access(record, clinician), "scan.png", out.getvalue())
    stored = open_document(doc)
    assert b"Lausanne" not in stored
    assert Image.open(io.BytesIO(stored)).info == {}


def test_pages_render_forms_with_labels(
    photo: DocumentReference, record: Patient, clinician: User
) -> None:
    client = verified_client(clinician)
    upload_page = client.get(reverse("records:document_upload", args=[record.pk])).content.decode()
    assert 'enctype="multipart/form-data"' in upload_page
    for field in ("file", "title", "category", "sensitivity"):
        assert f'for="id_{field}"' in upload_page
    listing = client.get(reverse("records:documents", args=[record.pk])).content.decode()
    assert 'for="id_category"' in listing and '<th scope="col">' in listing
    assert 'alt="Preview of Wound"' in listing
