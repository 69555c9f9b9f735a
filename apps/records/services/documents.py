"""Documents and photos of the record, stored encrypted under MEDIA_ROOT/records.

What is accepted is decided by the bytes, never by the name or the browser's content type:
PDF (parsed, without scripts, automatic actions or embedded files), JPEG and PNG (decoded, then
re-encoded so that EXIF, GPS and every other piece of metadata is dropped). Files are stored
under a random name, sealed with `apps.core.crypto` (the storage name is the authenticated
context, so a blob cannot be swapped for another document's).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import tempfile
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from apps.accounts.models import CLINICAL_ROLES
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core import crypto, scanning
from apps.notifications.services import notify

from ..access import PatientAccess
from ..models import DocumentReference, Sensitivity
from . import RecordError

STORAGE_DIR = "records"
STORAGE_NAME = re.compile(r"^[0-9a-f]{32}\.bin$")
THUMBNAIL_SIZE = 320
# Larger pictures are refused before decoding (a 50 MP RGBA bitmap is already 200 MB).
MAX_PIXELS = 50_000_000
# The "filename" column is 120 characters.
MAX_FILENAME = 120
# Walking a PDF's objects is bounded so that a crafted file cannot keep a worker busy.
MAX_PDF_NODES = 500_000

PDF = "application/pdf"
JPEG = "image/jpeg"
PNG = "image/png"
EXTENSIONS = {PDF: (".pdf",), JPEG: (".jpg", ".jpeg"), PNG: (".png",)}

# Markup or script that has no business in a PDF or a picture: its presence means the file
# was built to be read as something else too (a polyglot). Long enough not to occur by chance.
_ACTIVE_MARKUP = re.compile(
    rb"<script|<!doctype\s+html|<html[\s>]|<iframe|<\?php|javascript:", re.IGNORECASE
)
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# PDF names that make a reader run something or carry another file.
_PDF_ACTIVE_KEYS = {"/JS", "/JavaScript", "/EmbeddedFiles", "/EF", "/XFA", "/RichMediaContent"}
_PDF_ACTIVE_VALUES = {
    "/JavaScript",
    "/Launch",
    "/ImportData",
    "/RichMediaExecute",
    "/GoToE",
    "/EmbeddedFile",
    "/FileAttachment",
    "/RichMedia",
}
_PDF_ACTIVE_RAW = re.compile(rb"/(?:JavaScript|Launch|EmbeddedFiles?|RichMedia)(?![0-9A-Za-z])")
_FILENAME_FORBIDDEN = re.compile(r'[<>:"|?*;]')


@dataclass(frozen=True)
class CleanFile:
    """An accepted upload: the bytes to store and what was learnt about them."""

    content: bytes
    content_type: str
    thumbnail: bytes | None = None


# ---------------------------------------------------------------------------------------------
# Checks


def sanitize_filename(name: str) -> str:
    """A display name: the last path component, printable, without bidi tricks, capped."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    # Control, format (bidi overrides, zero-width), surrogate and unassigned characters.
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    name = _FILENAME_FORBIDDEN.sub("_", name)
    name = " ".join(name.split()).strip(" .")
    stem, ext = os.path.splitext(name)
    ext = ext.lower()[:10]
    stem = stem.strip(" .") or "document"
    return stem[: MAX_FILENAME - len(ext)].rstrip(" .") + ext


def _kind_label(content_type: str) -> str:
    return {PDF: _("PDF document"), JPEG: _("JPEG picture"), PNG: _("PNG picture")}[content_type]


def _detect(content: bytes) -> str:
    if content.startswith(b"%PDF-"):
        return PDF
    if content.startswith(b"\xff\xd8\xff"):
        return JPEG
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    raise RecordError(_("Only PDF documents and JPEG or PNG pictures can be added."))


def _check_extension(filename: str, content_type: str) -> None:
    ext = os.path.splitext(filename)[1].lower()
    if ext not in EXTENSIONS[content_type]:
        raise RecordError(
            _(
                "The file name does not match its content: this is a %(kind)s, so its name "
                "should end in %(ext)s."
            )
            % {"kind": _kind_label(content_type), "ext": " / ".join(EXTENSIONS[content_type])}
        )


def _check_pdf(content: bytes) -> None:
    from pypdf import PdfReader
    from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject

    refused = RecordError(
        _(
            "PDFs with scripts, automatic actions or embedded files cannot be added. "
            "Print the document to a new PDF and try again."
        )
    )
    if _PDF_ACTIVE_RAW.search(content):
        raise refused
    try:
        reader = PdfReader(io.BytesIO(content), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise RecordError(
                _("Password-protected PDFs cannot be added. Remove the password and try again.")
            )
        if len(reader.pages) < 1:
            raise ValueError("no page")
        # Every object reachable from the trailer: catalogue, pages, annotations, forms…
        seen: set[tuple[int, int]] = set()
        stack: list[Any] = [reader.trailer]
        steps = 0
        while stack:
            steps += 1
            if steps > MAX_PDF_NODES:
                raise ValueError("too many objects")
            node = stack.pop()
            if isinstance(node, IndirectObject):
                ref = (node.idnum, node.generation)
                if ref in seen:
                    continue
                seen.add(ref)
                node = node.get_object()
            if isinstance(node, DictionaryObject):
                for key, value in node.items():
                    if key in _PDF_ACTIVE_KEYS:
                        raise refused
                    if key in ("/S", "/Type", "/Subtype"):
                        name = value.get_object() if isinstance(value, IndirectObject) else value
                        if str(name) in _PDF_ACTIVE_VALUES:
                            raise refused
                    stack.append(value)
            elif isinstance(node, ArrayObject):
                stack.extend(node)
    except RecordError:
        raise
    except Exception:  # noqa: BLE001 - hostile input: any parser failure means "unreadable"
        raise RecordError(_("This PDF cannot be read. It may be damaged.")) from None


def _to_srgb(image: Any) -> Any:
    """Convert to plain L, RGB or RGBA in sRGB, so the colours survive dropping the ICC profile."""
    from PIL import ImageCms

    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if has_alpha else ("L" if image.mode in ("1", "L") else "RGB")
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "RGBA", "CMYK"):
        with contextlib.suppress(ImageCms.PyCMSError, OSError, ValueError, TypeError):
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            target = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
            return ImageCms.profileToProfile(image, source, target, outputMode=out_mode)
    return image if image.mode == mode else image.convert(mode)


def _clean_image(content: bytes, content_type: str) -> CleanFile:
    from PIL import Image, ImageOps

    # The JPEG opener itself hands back an MPO image for multi-picture files (phone photos).
    formats = ["JPEG"] if content_type == JPEG else ["PNG"]
    unreadable = RecordError(
        _("This picture cannot be read. It may be damaged, or not really a JPEG or PNG file.")
    )
    if content_type == PNG:
        end = content.find(_PNG_END)
        if end < 0:
            raise unreadable
        if content[end + len(_PNG_END) :].strip(b"\x00\r\n\t "):
            raise RecordError(
                _("The picture carries other data after its end: it cannot be added.")
            )
    too_large = RecordError(
        _("This picture is too large: at most %(n)s megapixels are accepted.")
        % {"n": MAX_PIXELS // 1_000_000}
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(content), formats=formats) as probe:
                if probe.width * probe.height > MAX_PIXELS:
                    raise too_large
                probe.verify()
            # `verify` leaves the image unusable: open it again to decode it.
            with Image.open(io.BytesIO(content), formats=formats) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                clean = _to_srgb(upright).copy()
    except RecordError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_large from None
    except Exception:  # noqa: BLE001 - hostile input: any decoder failure means "unreadable"
        raise unreadable from None
    # A fresh info dict: no EXIF, XMP, ICC, text chunks or comments reach the encoder.
    clean.info = {}
    out = io.BytesIO()
    if content_type == JPEG:
        if clean.mode not in ("RGB", "L"):
            clean = clean.convert("RGB")
        clean.save(out, "JPEG", quality=90, optimize=True)
    else:
        clean.save(out, "PNG", optimize=True)
    return CleanFile(out.getvalue(), content_type, _thumbnail(clean))


def _thumbnail(image: Any) -> bytes:
    from PIL import Image

    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    if thumb.mode in ("RGBA", "LA"):
        background = Image.new("RGB", thumb.size, (255, 255, 255))
        background.paste(thumb, mask=thumb.getchannel("A"))
        thumb = background
    elif thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGB")
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=80)
    return out.getvalue()


def check_upload(content: bytes, filename: str) -> CleanFile:
    """The bytes to store for this upload, or RecordError saying why it is refused."""
    if not content:
        raise RecordError(_("The file is empty."))
    # Scanned first, on the bytes as sent: a threat hidden after a picture's end or inside a
    # PDF must be named as such, not reported as a damaged file (or cleaned away unseen).
    try:
        scanning.scan(content, filename)
    except scanning.Infected as threat:
        raise RecordError(
            _("This file was refused: it contains a threat (%(name)s).") % {"name": threat.name}
        ) from None
    except scanning.ScanUnavailable:
        raise RecordError(
            _("This file could not be checked for viruses just now. Try again later.")
        ) from None
    content_type = _detect(content)
    _check_extension(filename, content_type)
    if _ACTIVE_MARKUP.search(content):
        raise RecordError(_("The file contains web page or script code and cannot be added."))
    if content_type == PDF:
        _check_pdf(content)
        return CleanFile(content, PDF)
    return _clean_image(content, content_type)


def _read_limited(uploaded_file: UploadedFile, limit: int) -> bytes:
    too_big = RecordError(
        _("The file is too large: the limit is %(limit)s.") % {"limit": filesizeformat(limit)}
    )
    if uploaded_file.size is not None and uploaded_file.size > limit:
        raise too_big
    with contextlib.suppress(AttributeError, OSError, ValueError):
        uploaded_file.seek(0)
    content = uploaded_file.read(limit + 1)
    if len(content) > limit:
        raise too_big
    return bytes(content)


# ---------------------------------------------------------------------------------------------
# Storage


def storage_root() -> Path:
    return Path(settings.MEDIA_ROOT) / STORAGE_DIR


def storage_path(name: str) -> Path:
    """Where a stored blob lives; only names we generated are accepted."""
    if not STORAGE_NAME.match(name):
        raise ValueError(f"not a storage name: {name!r}")
    return storage_root() / name


def new_storage_name() -> str:
    return secrets.token_hex(16) + ".bin"


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file next to `path`, flush it to disk, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _store(name: str, plaintext: bytes) -> bytes:
    blob = crypto.seal(plaintext, context=name.encode())
    write_atomically(storage_path(name), blob)
    return blob


def open_document(document: DocumentReference, thumbnail: bool = False) -> bytes:
    """The decrypted file (or its thumbnail). Raises FileNotFoundError or DecryptionError."""
    name = document.thumbnail_name if thumbnail else document.storage_name
    if not name:
        raise FileNotFoundError("this document has no thumbnail")
    content = crypto.open_sealed(storage_path(name).read_bytes(), context=name.encode())
    if not thumbnail and hashlib.sha256(content).hexdigest() != document.sha256:
        raise crypto.DecryptionError("the content does not match the recorded digest")
    return content


# ---------------------------------------------------------------------------------------------
# Actions


def _check_uploader(access: PatientAccess) -> None:
    if not access.clinical or (
        not access.is_patient_self and access.user.role not in CLINICAL_ROLES
    ):
        raise RecordError(_("Only the patient and the care team can add documents."))


def do_upload_document(
    access: PatientAccess,
    uploaded_file: UploadedFile,
    *,
    title: str,
    category: str,
    sensitivity: str = Sensitivity.NORMAL,
    request: HttpRequest | None = None,
) -> DocumentReference:
    """Check, clean, encrypt and store an upload, then record it (audited, patient notified).

    Patients may upload too (a photo of a wound…); their documents are always of the normal
    category and nobody is notified here.
    """
    _check_uploader(access)
    title = " ".join((title or "").split())
    if not title:
        raise RecordError(_("Give the document a title."))
    if category not in DocumentReference.Category.values:
        raise RecordError(_("Choose a category."))
    if access.is_patient_self:
        sensitivity = Sensitivity.NORMAL
    elif sensitivity not in access.sensitivities:
        raise RecordError(_("Your role may not add documents of this category."))
    filename = sanitize_filename(uploaded_file.name or "")
    content = _read_limited(uploaded_file, settings.RECORDS_MAX_UPLOAD_BYTES)
    stored = store_file(content, filename)
    try:
        with transaction.atomic():
            document = DocumentReference.objects.create(
                patient=access.patient,
                title=title[:200],
                category=category,
                sensitivity=sensitivity,
                recorded_by=access.user,
                **stored.fields(),
            )
            audit(
                Action.CREATE,
                request=request,
                actor=access.user,
                obj=document,
                patient_id=str(access.patient.pk),
                detail=access.audit_detail(what="document", size=document.size),
            )
            _notify_patient(access)
    except BaseException:
        stored.discard()
        raise
    return document


@dataclass(frozen=True)
class StoredFile:
    """A checked file, written encrypted under MEDIA_ROOT: the DocumentReference columns."""

    content_type: str
    size: int
    sha256: str
    filename: str
    storage_name: str
    thumbnail_name: str
    key_id: str

    def fields(self) -> dict[str, Any]:
        return {
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
            "filename": self.filename,
            "storage_name": self.storage_name,
            "thumbnail_name": self.thumbnail_name,
            "key_id": self.key_id,
        }

    def discard(self) -> None:
        """Remove the files (the row that would have named them was not saved)."""
        for name in filter(None, [self.storage_name, self.thumbnail_name]):
            storage_path(name).unlink(missing_ok=True)


def store_file(content: bytes, filename: str, *, add_extension: bool = False) -> StoredFile:
    """Check, clean, encrypt and write `content` (bytes from any channel: portal, FHIR API).

    Raises RecordError when the file is refused. With `add_extension`, a name without one gets
    the extension of its content (FHIR attachments often carry no file name); a wrong
    extension is refused either way.
    """
    if len(content) > settings.RECORDS_MAX_UPLOAD_BYTES:
        raise RecordError(
            _("The file is too large: the limit is %(limit)s.")
            % {"limit": filesizeformat(settings.RECORDS_MAX_UPLOAD_BYTES)}
        )
    filename = sanitize_filename(filename)
    if add_extension and content and not os.path.splitext(filename)[1]:
        with contextlib.suppress(RecordError):
            filename = sanitize_filename(filename + EXTENSIONS[_detect(content)][0])
    clean = check_upload(content, filename)
    storage_name = new_storage_name()
    thumbnail_name = new_storage_name() if clean.thumbnail is not None else ""
    stored = StoredFile(
        content_type=clean.content_type,
        size=len(clean.content),
        sha256=hashlib.sha256(clean.content).hexdigest(),
        filename=filename,
        storage_name=storage_name,
        thumbnail_name=thumbnail_name,
        key_id="",
    )
    try:
        blob = _store(storage_name, clean.content)
        if clean.thumbnail is not None:
            _store(thumbnail_name, clean.thumbnail)
    except BaseException:
        stored.discard()
        raise
    return StoredFile(**{**stored.fields(), "key_id": crypto.key_id_for(blob)})


def _notify_patient(access: PatientAccess) -> None:
    owner = access.patient.user
    if access.is_patient_self or owner is None or not owner.is_active:
        return
    with translation.override(access.patient.preferred_language or None):
        title = _("A new document is in your record")
    notify(owner, "record", title, "", reverse("records:my_documents"))


def do_reseal_document(document: DocumentReference, *, dry_run: bool = False) -> int:
    """Re-encrypt the files of `document` with the newest key; returns how many needed it.

    Each file is replaced atomically and `key_id` follows the file, so an interrupted run can
    simply be started again. Raises FileNotFoundError or DecryptionError for a bad file.
    """
    count = 0
    key_id = document.key_id
    for name in filter(None, [document.storage_name, document.thumbnail_name]):
        path = storage_path(name)
        blob = path.read_bytes()
        if crypto.needs_reseal(blob):
            count += 1
            if dry_run:
                crypto.open_sealed(blob, context=name.encode())
            else:
                blob = crypto.reseal(blob, context=name.encode())
                write_atomically(path, blob)
        if name == document.storage_name:
            key_id = crypto.key_id_for(blob)
    if not dry_run and key_id != document.key_id:
        DocumentReference.objects.filter(pk=document.pk).update(key_id=key_id)
        document.key_id = key_id
    return count
