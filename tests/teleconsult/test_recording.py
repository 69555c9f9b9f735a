"""Consent and recording: both consents first, sealed chunks on disk, audited reads, retention."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import Http404
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.core.realtime import EVENT_TYPES
from apps.records.services.documents import storage_path
from apps.teleconsult.models import Consultation, Recording, RecordingChunk, RecordingConsent
from apps.teleconsult.services import ConsultError
from apps.teleconsult.services.errors import Conflict, NotAllowed, TooLarge
from apps.teleconsult.services.recording import (
    do_add_chunk,
    do_set_consent,
    do_start_recording,
    do_stop_recording,
    open_recording,
    purge_expired_recordings,
    recording_allowed,
    stop_running_recordings,
)
from apps.teleconsult.services.rooms import Member, room_group
from apps.teleconsult.tasks import purge_recordings
from tests.teleconsult.records_cast import *  # noqa: F403
from tests.teleconsult.records_cast import end, guest_invite, in_call, webm_chunk

WEBM_TYPE = "video/webm;codecs=vp8,opus"


def consent_both(call: dict[str, Member]) -> None:
    do_set_consent(call["patient"], True)
    do_set_consent(call["clinician"], True)


def make_recording(call: dict[str, Member], *chunks: bytes) -> Recording:
    """A finished recording of these chunks, made by the call's clinician."""
    consent_both(call)
    recording = do_start_recording(call["clinician"])
    for seq, data in enumerate(chunks):
        do_add_chunk(call["clinician"], recording.pk, seq, data, content_type=WEBM_TYPE)
    return do_stop_recording(call["clinician"], recording.pk)


def test_recording_cannot_start_until_both_consents_are_recorded(
    call: dict[str, Member], room: Consultation
) -> None:
    clinician, patient = call["clinician"], call["patient"]
    # no consent at all
    with pytest.raises(Conflict):
        do_start_recording(clinician)
    # the patient only
    do_set_consent(patient, True)
    with pytest.raises(Conflict):
        do_start_recording(clinician)
    # the clinician only
    do_set_consent(patient, False)
    do_set_consent(clinician, True)
    with pytest.raises(Conflict):
        do_start_recording(clinician)
    assert not Recording.objects.exists()

    # both: it starts, with its retention date
    do_set_consent(patient, True)
    assert recording_allowed(room, clinician.user)
    before = timezone.now()
    recording = do_start_recording(clinician)
    assert recording.status == Recording.Status.RECORDING
    assert recording.started_by == clinician.user
    assert before + dt.timedelta(days=30) <= recording.delete_after
    assert recording.delete_after <= timezone.now() + dt.timedelta(days=30)
    assert AuditEvent.objects.filter(
        action=Action.CREATE, object_type="teleconsult.recording", object_id=str(recording.pk)
    ).exists()


def test_the_recording_clinician_needs_his_own_consent(
    call: dict[str, Member], room: Consultation, colleague: User
) -> None:
    nurse = in_call(room, colleague)
    do_set_consent(call["patient"], True)
    do_set_consent(nurse, True)
    # the nurse consented, not the physician: he may not record, she may
    with pytest.raises(Conflict):
        do_start_recording(call["clinician"])
    assert do_start_recording(nurse).started_by == colleague


def test_consents_are_recorded_with_their_withdrawal(
    call: dict[str, Member], room: Consultation, django_capture_on_commit_callbacks: Any
) -> None:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(room_group(room.room), channel)

    with django_capture_on_commit_callbacks(execute=True):
        state = do_set_consent(call["patient"], True)
        again = do_set_consent(call["patient"], True)  # no second row
        do_set_consent(call["patient"], False)

    assert state == {
        "consents": {"patient": True, "clinician": False},
        "recording": None,
        "allowed": False,
    }
    assert again == state
    consent = RecordingConsent.objects.get()
    assert consent.seat == "patient" and consent.withdrawn_at is not None
    event = async_to_sync(layer.receive)(channel)["event"]
    assert event["type"] == "consult.recording"
    assert set(event) - {"type"} == EVENT_TYPES["consult.recording"]
    assert event["consents"] == {"patient": True, "clinician": False}
    assert AuditEvent.objects.filter(object_type="teleconsult.recordingconsent").count() == 2


def test_a_guest_can_neither_consent_nor_record(
    call: dict[str, Member], room: Consultation, clinician: User
) -> None:
    guest = in_call(room, None, guest_invite(room, clinician))  # type: ignore[arg-type]
    with pytest.raises(NotAllowed):
        do_set_consent(guest, True)
    with pytest.raises(NotAllowed):
        do_start_recording(guest)
    with pytest.raises(NotAllowed):
        do_start_recording(call["patient"])
    assert not RecordingConsent.objects.exists()


def test_one_recording_at_a_time(call: dict[str, Member]) -> None:
    consent_both(call)
    do_start_recording(call["clinician"])
    with pytest.raises(Conflict):
        do_start_recording(call["clinician"])


def test_a_stored_chunk_is_sealed_never_plaintext(call: dict[str, Member], media: Path) -> None:
    # given a recording in progress
    consent_both(call)
    recording = do_start_recording(call["clinician"])
    data = webm_chunk(0)

    # when the browser uploads its first chunk
    assert do_add_chunk(call["clinician"], recording.pk, 0, data, content_type=WEBM_TYPE)

    # then the file on disk holds none of the WebM bytes
    chunk = RecordingChunk.objects.get()
    on_disk = storage_path(chunk.storage_name).read_bytes()
    assert on_disk.startswith(b"VH1")
    assert data[:4] not in on_disk  # the EBML magic
    assert b"webm" not in on_disk and b"cluster-0000" not in on_disk
    assert all(data[i : i + 32] not in on_disk for i in range(0, len(data) - 32, 32))
    assert chunk.size == len(data) and chunk.key_id
    # and nothing else was written next to it (no temporary plaintext left over)
    assert [p.name for p in (media / "records").iterdir()] == [chunk.storage_name]


def test_chunks_are_idempotent_per_sequence_number(call: dict[str, Member]) -> None:
    consent_both(call)
    recording = do_start_recording(call["clinician"])
    first = webm_chunk(0)
    assert do_add_chunk(call["clinician"], recording.pk, 0, first, content_type=WEBM_TYPE)
    # a retried upload of the same piece changes nothing
    assert not do_add_chunk(call["clinician"], recording.pk, 0, first, content_type=WEBM_TYPE)
    # other bytes under the same number are refused
    with pytest.raises(Conflict):
        do_add_chunk(call["clinician"], recording.pk, 0, webm_chunk(1), content_type=WEBM_TYPE)
    recording.refresh_from_db()
    assert (recording.chunks, recording.size) == (1, len(first))
    assert RecordingChunk.objects.count() == 1


@pytest.mark.parametrize(
    ("seq", "data", "content_type", "error"),
    [
        (-1, b"x", WEBM_TYPE, ConsultError),
        ("1", b"x", WEBM_TYPE, ConsultError),
        (0, b"", WEBM_TYPE, ConsultError),
        (0, b"x", "text/html", ConsultError),
        (0, b"x" * 2049, WEBM_TYPE, TooLarge),
    ],
)
def test_bad_chunks_are_refused(
    call: dict[str, Member],
    settings: Any,
    seq: Any,
    data: bytes,
    content_type: str,
    error: type[Exception],
) -> None:
    settings.TELECONSULT_RECORDING_CHUNK_BYTES = 2048
    consent_both(call)
    recording = do_start_recording(call["clinician"])
    with pytest.raises(error):
        do_add_chunk(call["clinician"], recording.pk, seq, data, content_type=content_type)
    assert not RecordingChunk.objects.exists()


def test_only_the_recording_clinician_uploads_and_only_while_it_runs(
    call: dict[str, Member], room: Consultation, colleague: User
) -> None:
    nurse = in_call(room, colleague)
    consent_both(call)
    recording = do_start_recording(call["clinician"])
    with pytest.raises(NotAllowed):
        do_add_chunk(nurse, recording.pk, 0, webm_chunk(0), content_type=WEBM_TYPE)
    with pytest.raises(NotAllowed):
        do_add_chunk(call["patient"], recording.pk, 0, webm_chunk(0), content_type=WEBM_TYPE)
    # any clinician of the call may stop it
    stopped = do_stop_recording(nurse, recording.pk)
    assert stopped.status == Recording.Status.COMPLETE and stopped.ended_at is not None
    with pytest.raises(Conflict):
        do_add_chunk(call["clinician"], recording.pk, 0, webm_chunk(0), content_type=WEBM_TYPE)
    # stopping again changes nothing
    assert do_stop_recording(call["clinician"], recording.pk).ended_at == stopped.ended_at


def test_withdrawing_consent_stops_the_recording(call: dict[str, Member]) -> None:
    consent_both(call)
    recording = do_start_recording(call["clinician"])
    do_add_chunk(call["clinician"], recording.pk, 0, webm_chunk(0), content_type=WEBM_TYPE)

    state = do_set_consent(call["patient"], False)

    recording.refresh_from_db()
    assert recording.status == Recording.Status.COMPLETE
    assert recording.ended_at is not None
    assert state["recording"] is None and not state["allowed"]
    stop = AuditEvent.objects.get(
        action=Action.UPDATE, object_type="teleconsult.recording", object_id=str(recording.pk)
    )
    assert stop.detail["stopped"] == "consent-withdrawn"


def test_another_clinician_withdrawing_does_not_stop_it(
    call: dict[str, Member], room: Consultation, colleague: User
) -> None:
    nurse = in_call(room, colleague)
    consent_both(call)
    do_set_consent(nurse, True)
    recording = do_start_recording(call["clinician"])
    do_set_consent(nurse, False)
    recording.refresh_from_db()
    assert recording.status == Recording.Status.RECORDING


def test_the_recording_reads_back_decrypted_for_the_patient_and_care_team(
    call: dict[str, Member],
    room: Consultation,
    clinician: User,
    patient: User,
    colleague: User,
) -> None:
    chunks = [webm_chunk(n) for n in range(3)]
    recording = make_recording(call, *chunks)
    assert (recording.size, recording.chunks) == (sum(map(len, chunks)), 3)
    end(room, clinician)

    for reader in (patient, clinician, colleague):
        found, content = open_recording(reader, recording.pk)
        assert found == recording
        assert b"".join(content) == b"".join(chunks)
    reads = AuditEvent.objects.filter(
        action=Action.READ, object_type="teleconsult.recording", object_id=str(recording.pk)
    )
    assert sorted(reads.values_list("actor_id", flat=True)) == sorted(
        [patient.pk, clinician.pk, colleague.pk]
    )


def test_outsiders_never_read_a_recording(
    call: dict[str, Member],
    room: Consultation,
    clinician: User,
    patient2: User,
    outsider: User,
    billing_user: User,
) -> None:
    recording = make_recording(call, webm_chunk(0))
    for stranger in (patient2, outsider, billing_user, None):
        with pytest.raises(Http404):
            open_recording(stranger, recording.pk)
    denied = AuditEvent.objects.filter(action=Action.DENIED, object_type="teleconsult.recording")
    assert denied.count() == 4
    assert not AuditEvent.objects.filter(action=Action.READ, object_type="teleconsult.recording")


def test_a_recording_in_progress_cannot_be_downloaded(
    call: dict[str, Member], clinician: User
) -> None:
    consent_both(call)
    recording = do_start_recording(call["clinician"])
    with pytest.raises(Http404):
        open_recording(clinician, recording.pk)


def test_chunks_swapped_on_disk_do_not_decrypt(call: dict[str, Member], clinician: User) -> None:
    recording = make_recording(call, webm_chunk(0), webm_chunk(1))
    first, second = RecordingChunk.objects.order_by("seq")
    shutil.copyfile(storage_path(second.storage_name), storage_path(first.storage_name))

    _found, content = open_recording(clinician, recording.pk)

    # the seal binds each blob to its place: the stream stops instead of giving wrong bytes
    assert b"".join(content) == b""


def test_the_end_of_the_call_stops_a_running_recording(
    call: dict[str, Member], room: Consultation, clinician: User
) -> None:
    consent_both(call)
    recording = do_start_recording(call["clinician"])
    assert stop_running_recordings(room, clinician) == 1
    recording.refresh_from_db()
    assert recording.status == Recording.Status.COMPLETE
    assert stop_running_recordings(room, clinician) == 0


def test_retention_deletes_files_and_keeps_the_trace(
    call: dict[str, Member], room: Consultation, media: Path, settings: Any
) -> None:
    # given a recording, and a fresh one made later
    old = make_recording(call, webm_chunk(0), webm_chunk(1))
    names = list(RecordingChunk.objects.values_list("storage_name", flat=True))
    fresh = Recording.objects.create(
        consultation=room,
        started_by=old.started_by,
        status=Recording.Status.COMPLETE,
        delete_after=old.delete_after + dt.timedelta(days=5),
    )

    # nothing is due yet
    assert purge_expired_recordings(old.delete_after - dt.timedelta(seconds=1)) == 0

    # when the retention of the first one has passed
    moment = old.delete_after + dt.timedelta(hours=1)
    assert purge_expired_recordings(moment) == 1

    # then its files and chunk rows are gone; the row says when and why, audited
    assert all(not storage_path(name).exists() for name in names)
    old.refresh_from_db()
    assert old.status == Recording.Status.DELETED and old.deleted_at == moment
    assert not old.parts.exists()
    event = AuditEvent.objects.get(action=Action.DELETE, object_type="teleconsult.recording")
    assert event.detail == {"what": "recording", "reason": "retention", "chunks": 2}
    fresh.refresh_from_db()
    assert fresh.status == Recording.Status.COMPLETE
    # running it again deletes nothing more
    assert purge_expired_recordings(moment) == 0
    assert AuditEvent.objects.filter(action=Action.DELETE).count() == 1


def test_the_beat_task_purges(call: dict[str, Member]) -> None:
    recording = make_recording(call, webm_chunk(0))
    Recording.objects.filter(pk=recording.pk).update(
        delete_after=timezone.now() - dt.timedelta(minutes=1)
    )
    purge_recordings.delay()
    recording.refresh_from_db()
    assert recording.status == Recording.Status.DELETED
