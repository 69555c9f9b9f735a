"""The in-call chat: text lines and files, kept with the consultation.

Texts are encrypted at rest (`EncryptedTextField`); files go through the records app's checks
and encrypted storage (`store_file`: PDF, JPEG and PNG only, cleaned of metadata). Only people
admitted to the call read or write it; every read and write is audited, and each new line is
pushed to the room's sockets after the commit. Once the call has ended, the transcript and its
files belong to the record: the patient and their clinical staff read them (`transcript`,
`get_chat_file_for_user`).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import Http404, HttpRequest
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core import crypto
from apps.core.realtime import send_event_on_commit
from apps.records.access import Level, PatientAccess, check_patient_access, deny
from apps.records.models import Encounter
from apps.records.services import RecordError
from apps.records.services.documents import StoredFile, storage_path, store_file

from ..models import Attendance, ChatMessage, Consultation
from . import ConsultError
from .errors import Conflict, TooLarge
from .rooms import Member, get_room_for_user, is_admitted, room_group

logger = logging.getLogger(__name__)

MAX_TEXT = 2000


def message_json(message: ChatMessage, room: str) -> dict[str, Any]:
    """A chat line as the JSON API and the `consult.chat` event give it."""
    file = None
    if message.storage_name:
        file = {
            "name": message.filename,
            "size": message.size,
            "url": reverse("teleconsult:chat_file", args=[room, message.pk]),
        }
    return {
        "id": message.pk,
        "author": message.attendance.display_name,
        "seat": message.attendance.seat,
        "sent_at": message.sent_at.isoformat(),
        "text": message.text,
        "file": file,
    }


def admitted_attendance(member: Member) -> Attendance:
    """The member's presence in the call; Conflict while they wait or were turned away."""
    lookup: dict[str, Any] = (
        {"user": member.user} if member.user is not None else {"guest": member.guest}
    )
    attendance = Attendance.objects.filter(consultation=member.consultation, **lookup).first()
    if attendance is None or not is_admitted(attendance):
        raise Conflict(_("The chat opens when you have been admitted to the call."))
    return attendance


def _clean_text(text: Any) -> str:
    if text is None:
        return ""
    if not isinstance(text, str):
        raise ConsultError(_("The message must be text."))
    text = text.replace("\x00", "").strip()
    if len(text) > MAX_TEXT:
        raise ConsultError(
            _("The message is too long (at most %(n)s characters).") % {"n": MAX_TEXT}
        )
    return text


def _read_file(uploaded_file: UploadedFile) -> bytes:
    limit = settings.RECORDS_MAX_UPLOAD_BYTES
    too_big = TooLarge(
        _("The file is too large: the limit is %(limit)s.") % {"limit": filesizeformat(limit)}
    )
    if uploaded_file.size is not None and uploaded_file.size > limit:
        raise too_big
    content = uploaded_file.read(limit + 1)
    if len(content) > limit:
        raise too_big
    return bytes(content)


def _store(uploaded_file: UploadedFile) -> StoredFile:
    content = _read_file(uploaded_file)
    try:
        stored = store_file(content, uploaded_file.name or "")
    except RecordError as error:
        raise ConsultError(str(error)) from None
    if stored.thumbnail_name:
        # The chat shows no previews: the thumbnail the records storage made is not kept.
        storage_path(stored.thumbnail_name).unlink(missing_ok=True)
    return stored


def do_post_message(
    member: Member,
    text: Any = "",
    uploaded_file: UploadedFile | None = None,
    *,
    request: HttpRequest | None = None,
) -> ChatMessage:
    """Post a line (text, a file or both) to the call's chat; the room sees it on commit."""
    attendance = admitted_attendance(member)
    text = _clean_text(text)
    if not text and uploaded_file is None:
        raise ConsultError(_("Write a message or attach a file."))
    stored = _store(uploaded_file) if uploaded_file is not None else None
    try:
        with transaction.atomic():
            file_fields: dict[str, Any] = {}
            if stored is not None:
                file_fields = {
                    "filename": stored.filename,
                    "content_type": stored.content_type,
                    "size": stored.size,
                    "sha256": stored.sha256,
                    "storage_name": stored.storage_name,
                    "key_id": stored.key_id,
                }
            message = ChatMessage.objects.create(
                consultation=member.consultation, attendance=attendance, text=text, **file_fields
            )
            audit(
                Action.CREATE,
                request=request,
                actor=member.user,
                obj=message,
                patient_id=member.consultation.patient_ref,
                detail=member.audit_detail(
                    what="consultation-chat", file=stored is not None, size=len(text)
                ),
            )
            room = member.consultation.room
            send_event_on_commit(
                "consult.chat", {"room": room, **message_json(message, room)}, [room_group(room)]
            )
    except BaseException:
        if stored is not None:
            storage_path(stored.storage_name).unlink(missing_ok=True)
        raise
    return message


def transcript(consultation: Consultation) -> list[dict[str, Any]]:
    """Every line of the chat, oldest first (one query). The caller has checked access."""
    rows = ChatMessage.objects.filter(consultation=consultation).select_related("attendance")
    return [message_json(message, consultation.room) for message in rows]


def list_messages(member: Member) -> list[dict[str, Any]]:
    """The chat so far, for someone admitted to the call (a late joiner catches up)."""
    admitted_attendance(member)
    return transcript(member.consultation)


def _open(message: ChatMessage) -> bytes:
    name = message.storage_name
    try:
        content = crypto.open_sealed(storage_path(name).read_bytes(), context=name.encode())
    except (FileNotFoundError, ValueError, crypto.DecryptionError):
        logger.exception("chat message %s: stored file missing or unreadable", message.pk)
        raise Http404 from None
    if hashlib.sha256(content).hexdigest() != message.sha256:
        logger.error("chat message %s: the file does not match its digest", message.pk)
        raise Http404
    return content


def record_access(user: User | None, consultation: Consultation) -> PatientAccess | None:
    """What a past consultation's recordings and files need: clinical access to the patient's
    record (the patient, their care team, break-the-glass), for the Encounter's sensitivity."""
    if user is None or not user.is_authenticated:
        return None
    access = check_patient_access(user, consultation.patient_id, need=Level.CLINICAL)
    if access is None:
        return None
    sensitivity = (
        Encounter.objects.filter(pk=consultation.encounter_id)
        .values_list("sensitivity", flat=True)
        .first()
        if consultation.encounter_id is not None
        else None
    )
    if sensitivity is not None and sensitivity not in access.sensitivities:
        return None
    return access


def _refuse(
    user: User | None, request: HttpRequest | None, message_id: Any, patient_id: Any
) -> Http404:
    return deny(
        user if user is not None else User(),
        request=request,
        what="consultation-chat-file",
        object_type="teleconsult.chatmessage",
        object_id=str(message_id)[:40],
        patient_id=patient_id,
    )


def get_chat_file_for_user(
    user: User | None,
    room: Any,
    message_id: Any,
    *,
    guest_id: Any = None,
    request: HttpRequest | None = None,
) -> tuple[ChatMessage, bytes]:
    """A chat file, decrypted, for a member admitted to the live call, or, once the call is
    over, for the patient and their clinical staff. Http404 (audited) for anybody else."""
    consultation = (
        Consultation.objects.filter(room=room).first()
        if isinstance(room, str) and 0 < len(room) <= 32
        else None
    )
    message = None
    if consultation is not None and str(message_id).isdigit():
        message = (
            ChatMessage.objects.select_related("attendance")
            .filter(pk=int(message_id), consultation=consultation)
            .exclude(storage_name="")
            .first()
        )
    patient_id = consultation.patient_ref if consultation is not None else ""
    if consultation is None or message is None:
        raise _refuse(user, request, message_id, patient_id)
    detail: dict[str, Any]
    if consultation.is_closed:
        access = record_access(user, consultation)
        if access is None:
            raise _refuse(user, request, message.pk, patient_id)
        detail = access.audit_detail(what="consultation-chat-file")
    else:
        member = get_room_for_user(user, room, guest_id=guest_id, request=request, action=None)
        try:
            admitted_attendance(member)
        except Conflict:
            raise _refuse(user, request, message.pk, patient_id) from None
        detail = member.audit_detail(what="consultation-chat-file")
    content = _open(message)
    audit(
        Action.READ,
        request=request,
        actor=user,
        obj=message,
        patient_id=str(patient_id),
        detail=detail,
    )
    return message, content
