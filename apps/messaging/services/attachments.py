"""Files of messages: checked, cleaned and stored encrypted by the records app, and filed into
the patient's record by the team with one click.

`store_file` decides by content (PDF, JPEG, PNG only), re-encodes pictures without EXIF or GPS
data, makes thumbnails, runs the upload scanners and seals each blob under a random name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core import crypto
from apps.records.models import DocumentReference, Sensitivity
from apps.records.services import RecordError
from apps.records.services.documents import StoredFile, storage_path, store_file

from ..access import ThreadAccess
from ..models import Attachment, Message
from . import MessagingError


def _read(uploaded: UploadedFile) -> bytes:
    limit = settings.RECORDS_MAX_UPLOAD_BYTES
    too_big = MessagingError(
        _("“%(name)s” is too large: the limit is %(limit)s.")
        % {"name": uploaded.name, "limit": filesizeformat(limit)}
    )
    if uploaded.size is not None and uploaded.size > limit:
        raise too_big
    uploaded.seek(0)
    content = uploaded.read(limit + 1)
    if len(content) > limit:
        raise too_big
    return bytes(content)


def store_attachments(files: Sequence[UploadedFile]) -> list[StoredFile]:
    """Check, clean and write each file (before the transaction that records them).

    Raises MessagingError naming the first refused file; nothing stays written then.
    """
    if len(files) > settings.MESSAGING_MAX_FILES:
        raise MessagingError(
            _("At most %(n)s files can be attached to one message.")
            % {"n": settings.MESSAGING_MAX_FILES}
        )
    stored: list[StoredFile] = []
    try:
        for uploaded in files:
            content = _read(uploaded)
            try:
                stored.append(store_file(content, uploaded.name or ""))
            except RecordError as error:
                raise MessagingError(
                    _("“%(name)s” cannot be sent: %(reason)s")
                    % {"name": uploaded.name, "reason": error}
                ) from None
    except BaseException:
        discard(stored)
        raise
    return stored


def discard(stored: Sequence[StoredFile]) -> None:
    """Remove written files whose rows were not saved."""
    for done in stored:
        done.discard()


def attach(message: Message, stored: Sequence[StoredFile]) -> list[Attachment]:
    """The rows of files already written by `store_attachments`."""
    return Attachment.objects.bulk_create(
        [Attachment(message=message, **done.fields()) for done in stored]
    )


def open_attachment(attachment: Attachment, *, thumbnail: bool = False) -> bytes:
    """The decrypted file (or its thumbnail). Raises FileNotFoundError or DecryptionError."""
    name = attachment.thumbnail_name if thumbnail else attachment.storage_name
    if not name:
        raise FileNotFoundError("this attachment has no thumbnail")
    content = crypto.open_sealed(storage_path(name).read_bytes(), context=name.encode())
    if not thumbnail and hashlib.sha256(content).hexdigest() != attachment.sha256:
        raise crypto.DecryptionError("the content does not match the recorded digest")
    return content


def do_file_attachment(
    access: ThreadAccess,
    attachment: Attachment,
    *,
    title: str = "",
    request: HttpRequest | None = None,
) -> DocumentReference:
    """File a message's file into the patient's record (the team only; once).

    The record gets its own encrypted copy, so the message and the document live their own
    lives. Pictures are filed as photos, PDFs as other documents.
    """
    if not access.is_staff:
        raise MessagingError(_("Only the care team can file a file into the record."))
    if attachment.message.thread_id != access.thread.pk:
        raise MessagingError(_("This file is not part of this conversation."))
    title = " ".join((title or "").split()) or attachment.filename
    with transaction.atomic():
        locked = Attachment.objects.select_for_update().get(pk=attachment.pk)
        if locked.document_id is not None:
            document = DocumentReference.objects.get(pk=locked.document_id)
            attachment.document = document
            return document
        content = open_attachment(locked)
        stored = store_file(content, locked.filename)
        try:
            document = DocumentReference.objects.create(
                patient_id=access.thread.patient_id,
                title=title[:200],
                category=(
                    DocumentReference.Category.PHOTO
                    if locked.is_image
                    else DocumentReference.Category.OTHER
                ),
                sensitivity=Sensitivity.NORMAL,
                recorded_by=access.user,
                **stored.fields(),
            )
            now = timezone.now()
            Attachment.objects.filter(pk=locked.pk).update(
                document=document, filed_by=access.user, filed_at=now
            )
            audit(
                Action.CREATE,
                request=request,
                actor=access.user,
                obj=document,
                patient_id=str(access.thread.patient_id),
                detail=access.audit_detail(
                    what="document", source="messaging", attachment=locked.pk
                ),
            )
        except BaseException:
            stored.discard()
            raise
    attachment.document, attachment.filed_by, attachment.filed_at = document, access.user, now
    return document
