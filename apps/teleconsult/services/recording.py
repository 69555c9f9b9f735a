"""Recording consent and recordings.

Recording needs the explicit, recorded consent of the patient and of the clinician who records
(`RecordingConsent` rows; a withdrawal keeps the row with its time). Withdrawing consent stops
a recording in progress. The clinician's browser records (MediaRecorder) and uploads the
recording in chunks; each chunk is sealed with `apps.core.crypto` (AES-256-GCM, the recording,
its position and its storage name as authenticated context, so chunks cannot be swapped or
reordered) and written atomically under the records storage: no plaintext ever touches the
disk. A recording is deleted `TELECONSULT_RECORDING_RETENTION_DAYS` after it was made
(`purge_expired_recordings`, run hourly by Celery beat).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import Http404, HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core import crypto
from apps.core.realtime import send_event_on_commit
from apps.records.access import PatientAccess, deny
from apps.records.services.documents import new_storage_name, storage_path, write_atomically

from ..models import Consultation, Recording, RecordingChunk, RecordingConsent, Seat
from . import ConsultError
from .chat import record_access
from .errors import Conflict, NotAllowed, TooLarge
from .rooms import Member, room_group

logger = logging.getLogger(__name__)

# What MediaRecorder writes (its parameters such as `codecs=vp8,opus` are not kept): WebM in
# Chromium and Firefox, MP4 in Safari. The value is the download's file extension.
CONTENT_TYPES = {
    "video/webm": ".webm",
    "audio/webm": ".webm",
    "video/mp4": ".mp4",
    "audio/mp4": ".m4a",
}
# A five-second timeslice makes 720 chunks an hour: this bounds a recording at about a day.
MAX_SEQ = 20_000


# ---------------------------------------------------------------------------------------------
# Consent


def _active_consents(consultation: Consultation) -> list[tuple[str, int]]:
    return list(
        RecordingConsent.objects.filter(
            consultation=consultation, withdrawn_at__isnull=True
        ).values_list("seat", "user_id")
    )


def recording_allowed(consultation: Consultation, clinician: User | None = None) -> bool:
    """The patient consents and a clinician does (`clinician` himself, when given)."""
    consents = _active_consents(consultation)
    seats = {seat for seat, _user in consents}
    if Seat.PATIENT not in seats or Seat.CLINICIAN not in seats:
        return False
    if clinician is not None:
        return (Seat.CLINICIAN, clinician.pk) in consents
    return True


def recording_state(consultation: Consultation) -> dict[str, Any]:
    """The consents and the recording in progress, as the API and `consult.recording` give them."""
    seats = {seat for seat, _user in _active_consents(consultation)}
    current = (
        Recording.objects.filter(consultation=consultation, status=Recording.Status.RECORDING)
        .values_list("pk", flat=True)
        .first()
    )
    return {
        "consents": {"patient": Seat.PATIENT in seats, "clinician": Seat.CLINICIAN in seats},
        "recording": current,
        "allowed": Seat.PATIENT in seats and Seat.CLINICIAN in seats,
    }


def _broadcast(consultation: Consultation) -> dict[str, Any]:
    state = recording_state(consultation)
    send_event_on_commit(
        "consult.recording",
        {"room": consultation.room, **state},
        [room_group(consultation.room)],
    )
    return state


def _lock(consultation: Consultation) -> Consultation:
    """Serialise consent and recording changes of one room (two clinicians, two tabs)."""
    return Consultation.objects.select_for_update().get(pk=consultation.pk)


@transaction.atomic
def do_set_consent(
    member: Member, given: bool, *, request: HttpRequest | None = None
) -> dict[str, Any]:
    """The patient or a clinician gives or withdraws their own consent to recording.

    Withdrawing stops a recording that no longer has the consents it needs. Returns the
    room's recording state.
    """
    if member.seat not in (Seat.PATIENT, Seat.CLINICIAN) or member.user is None:
        raise NotAllowed(_("Only the patient and the clinicians can consent to recording."))
    if member.consultation.is_staff_room:
        raise NotAllowed(_("A staff room is never recorded."))
    consultation = _lock(member.consultation)
    active = RecordingConsent.objects.filter(
        consultation=consultation, user=member.user, withdrawn_at__isnull=True
    )
    now = timezone.now()
    if given and not active.exists():
        consent = RecordingConsent.objects.create(
            consultation=consultation, seat=member.seat, user=member.user, given_at=now
        )
        audit(
            Action.CREATE,
            request=request,
            actor=member.user,
            obj=consent,
            patient_id=str(consultation.patient_id),
            detail=member.audit_detail(what="recording-consent", given=True),
        )
    elif not given:
        for consent in active.select_for_update():
            consent.withdrawn_at = now
            consent.save(update_fields=["withdrawn_at"])
            audit(
                Action.UPDATE,
                request=request,
                actor=member.user,
                obj=consent,
                patient_id=str(consultation.patient_id),
                detail=member.audit_detail(what="recording-consent", given=False),
            )
        running = Recording.objects.select_for_update().filter(
            consultation=consultation, status=Recording.Status.RECORDING
        )
        for recording in running:
            if not recording_allowed(consultation, recording.started_by):
                _finish(recording, member.user, request, reason="consent-withdrawn")
    return _broadcast(consultation)


# ---------------------------------------------------------------------------------------------
# Recording


@transaction.atomic
def do_start_recording(
    member: Member, *, content_type: str = "video/webm", request: HttpRequest | None = None
) -> Recording:
    """A clinician starts recording; Conflict without both consents or while one runs."""
    if not member.is_clinician or member.user is None:
        raise NotAllowed(_("Only a clinician of the consultation may record it."))
    if member.consultation.is_staff_room:
        raise NotAllowed(_("A staff room is never recorded."))
    content_type = (content_type or "video/webm").split(";", 1)[0].strip().lower()
    if content_type not in CONTENT_TYPES:
        raise ConsultError(_("Recordings are WebM or MP4 video or audio."))
    consultation = _lock(member.consultation)
    consents = _active_consents(consultation)
    if not any(seat == Seat.PATIENT for seat, _user in consents):
        raise Conflict(_("The patient has not consented to recording."))
    if (Seat.CLINICIAN, member.user.pk) not in consents:
        raise Conflict(_("Give your own consent to recording first."))
    if Recording.objects.filter(
        consultation=consultation, status=Recording.Status.RECORDING
    ).exists():
        raise Conflict(_("The consultation is already being recorded."))
    now = timezone.now()
    recording = Recording.objects.create(
        consultation=consultation,
        started_by=member.user,
        started_at=now,
        content_type=content_type,
        delete_after=now + dt.timedelta(days=settings.TELECONSULT_RECORDING_RETENTION_DAYS),
    )
    audit(
        Action.CREATE,
        request=request,
        actor=member.user,
        obj=recording,
        patient_id=str(consultation.patient_id),
        detail=member.audit_detail(what="recording", started=True),
    )
    _broadcast(consultation)
    return recording


def _own_recording(member: Member, recording_id: Any, *, lock: bool = False) -> Recording:
    """A recording of this room that `member` (a clinician) may change; NotAllowed otherwise."""
    if not member.is_clinician or member.user is None:
        raise NotAllowed(_("Only a clinician of the consultation may record it."))
    if member.consultation.is_staff_room:
        raise NotAllowed(_("A staff room is never recorded."))
    queryset = Recording.objects.filter(consultation=member.consultation)
    if lock:
        queryset = queryset.select_for_update()
    recording = queryset.filter(pk=recording_id).first() if str(recording_id).isdigit() else None
    if recording is None:
        raise NotAllowed(_("There is no such recording in this consultation."))
    return recording


def chunk_context(recording_id: int, seq: int, storage_name: str) -> bytes:
    """What a chunk's seal authenticates: which recording, which position, which file."""
    return f"teleconsult.recording:{recording_id}:{seq}:{storage_name}".encode()


def do_add_chunk(
    member: Member, recording_id: Any, seq: Any, data: bytes, *, content_type: str = ""
) -> bool:
    """Store one uploaded piece, sealed. Idempotent per `seq`: True when it was new.

    Only the clinician who started the recording uploads to it, while it runs. A repeated
    `seq` with the same bytes is accepted again (a retried upload); with other bytes, Conflict.
    """
    recording = _own_recording(member, recording_id)
    if recording.started_by_id != member.user.pk:  # type: ignore[union-attr]
        raise NotAllowed(_("Only the clinician who started the recording uploads to it."))
    if not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise ConsultError(_("The chunk number is not valid."))
    base_type = (content_type or "").split(";", 1)[0].strip().lower()
    if base_type not in CONTENT_TYPES:
        raise ConsultError(_("Recordings are uploaded as WebM or MP4 video or audio."))
    limit = settings.TELECONSULT_RECORDING_CHUNK_BYTES
    if len(data) > limit:
        raise TooLarge(
            _("A recording chunk may hold at most %(limit)s.") % {"limit": filesizeformat(limit)}
        )
    if not data:
        raise ConsultError(_("The chunk is empty."))
    digest = hashlib.sha256(data).hexdigest()
    existing = RecordingChunk.objects.filter(recording=recording, seq=seq).first()
    if existing is not None:
        return _same_chunk(existing, digest)
    if recording.status != Recording.Status.RECORDING:
        raise Conflict(_("This recording has stopped."))
    name = new_storage_name()
    blob = crypto.seal(data, context=chunk_context(recording.pk, seq, name))
    write_atomically(storage_path(name), blob)
    try:
        with transaction.atomic():
            locked = Recording.objects.select_for_update().get(pk=recording.pk)
            if locked.status != Recording.Status.RECORDING:
                raise Conflict(_("This recording has stopped."))
            RecordingChunk.objects.create(
                recording=locked,
                seq=seq,
                size=len(data),
                sha256=digest,
                storage_name=name,
                key_id=crypto.key_id_for(blob),
            )
            Recording.objects.filter(pk=locked.pk).update(
                size=F("size") + len(data), chunks=F("chunks") + 1
            )
    except IntegrityError:
        # The same piece uploaded twice at once: the other request stored it.
        storage_path(name).unlink(missing_ok=True)
        return _same_chunk(RecordingChunk.objects.get(recording=recording, seq=seq), digest)
    except BaseException:
        storage_path(name).unlink(missing_ok=True)
        raise
    return True


def _same_chunk(existing: RecordingChunk, digest: str) -> bool:
    if existing.sha256 != digest:
        raise Conflict(_("This chunk was already uploaded with other content."))
    return False


def _finish(
    recording: Recording, by: User | None, request: HttpRequest | None, *, reason: str
) -> None:
    recording.status, recording.ended_at = Recording.Status.COMPLETE, timezone.now()
    recording.save(update_fields=["status", "ended_at"])
    recording.refresh_from_db(fields=["size", "chunks"])
    audit(
        Action.UPDATE,
        request=request,
        actor=by,
        obj=recording,
        patient_id=str(recording.consultation.patient_id),
        detail={
            "what": "recording",
            "stopped": reason,
            "size": recording.size,
            "chunks": recording.chunks,
        },
    )


@transaction.atomic
def do_stop_recording(
    member: Member, recording_id: Any, *, request: HttpRequest | None = None
) -> Recording:
    """A clinician of the room stops a recording (idempotent)."""
    recording = _own_recording(member, recording_id, lock=True)
    if recording.status == Recording.Status.RECORDING:
        _finish(recording, member.user, request, reason="stopped")
        _broadcast(member.consultation)
    return recording


@transaction.atomic
def stop_running_recordings(consultation: Consultation, by: User | None = None) -> int:
    """Stop what is still recording when the call ends (the browser may not have said so)."""
    running = list(
        Recording.objects.select_for_update().filter(
            consultation=consultation, status=Recording.Status.RECORDING
        )
    )
    for recording in running:
        _finish(recording, by, None, reason="call-ended")
    return len(running)


# ---------------------------------------------------------------------------------------------
# Reading and retention


@dataclass(frozen=True)
class _Part:
    seq: int
    storage_name: str
    sha256: str


def _decrypted(recording_id: int, parts: list[_Part]) -> Iterator[bytes]:
    for part in parts:
        try:
            blob = storage_path(part.storage_name).read_bytes()
            data = crypto.open_sealed(
                blob, context=chunk_context(recording_id, part.seq, part.storage_name)
            )
        except (OSError, crypto.DecryptionError):
            # The response has started: all that can be done is to stop it short.
            logger.exception("recording %s chunk %s: unreadable", recording_id, part.seq)
            return
        if hashlib.sha256(data).hexdigest() != part.sha256:
            logger.error("recording %s chunk %s: digest differs", recording_id, part.seq)
            return
        yield data


def get_recording_for_user(
    user: User | None, recording_id: Any, *, request: HttpRequest | None = None
) -> tuple[Recording, PatientAccess]:
    """A complete recording the user may watch (the patient, their clinical staff) and the
    access that allows it; Http404 (audited) otherwise. The read itself is audited by
    `open_recording`."""
    recording = (
        Recording.objects.select_related("consultation")
        .filter(pk=recording_id, status=Recording.Status.COMPLETE)
        .first()
        if str(recording_id).isdigit()
        else None
    )
    access = record_access(user, recording.consultation) if recording is not None else None
    if recording is None or access is None:
        raise deny(
            user if user is not None else User(),
            request=request,
            what="recording",
            object_type="teleconsult.recording",
            object_id=str(recording_id)[:40],
            patient_id=recording.consultation.patient_id if recording is not None else "",
        )
    return recording, access


def open_recording(
    user: User | None, recording_id: Any, request: HttpRequest | None = None
) -> tuple[Recording, Iterator[bytes]]:
    """The recording and its decrypted bytes, streamed chunk by chunk (audited read)."""
    recording, access = get_recording_for_user(user, recording_id, request=request)
    parts = [
        _Part(seq, name, digest)
        for seq, name, digest in recording.parts.order_by("seq").values_list(
            "seq", "storage_name", "sha256"
        )
    ]
    if any(not storage_path(part.storage_name).exists() for part in parts):
        logger.error("recording %s: a stored chunk is missing", recording.pk)
        raise Http404
    audit(
        Action.READ,
        request=request,
        actor=user,
        obj=recording,
        patient_id=str(recording.consultation.patient_id),
        detail=access.audit_detail(what="recording", size=recording.size),
    )
    return recording, _decrypted(recording.pk, parts)


def purge_expired_recordings(now: dt.datetime | None = None) -> int:
    """Delete the recordings whose retention ended: files first, then the rows (idempotent).

    A run interrupted between the two leaves rows whose files are already gone; the next run
    finishes them.
    """
    moment = now or timezone.now()
    expired = Recording.objects.filter(
        status__in=[Recording.Status.RECORDING, Recording.Status.COMPLETE],
        delete_after__lte=moment,
    ).values_list("pk", flat=True)
    purged = 0
    for pk in list(expired):
        with transaction.atomic():
            recording = (
                Recording.objects.select_for_update(skip_locked=True)
                .select_related("consultation")
                .filter(pk=pk, status__in=[Recording.Status.RECORDING, Recording.Status.COMPLETE])
                .first()
            )
            if recording is None:
                continue
            names = list(recording.parts.values_list("storage_name", flat=True))
            for name in names:
                storage_path(name).unlink(missing_ok=True)
            recording.parts.all().delete()
            recording.status, recording.deleted_at = Recording.Status.DELETED, moment
            recording.save(update_fields=["status", "deleted_at"])
            audit(
                Action.DELETE,
                obj=recording,
                patient_id=str(recording.consultation.patient_id),
                detail={"what": "recording", "reason": "retention", "chunks": len(names)},
            )
            purged += 1
    return purged
