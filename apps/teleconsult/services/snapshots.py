"""Annotated snapshots: a frame of the shared screen with the drawings on it, kept in the record.

The clinician's browser draws the video frame and the annotations onto a canvas and uploads the
PNG; it becomes a DocumentReference of the patient (category imaging, linked to the
consultation's Encounter), checked, cleaned and encrypted by the records storage.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.models import DocumentReference, Sensitivity
from apps.records.services import RecordError
from apps.records.services.documents import store_file

from ..models import Consultation
from . import ConsultError
from .errors import NotAllowed, TooLarge
from .rooms import Member

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _title(title: Any, consultation: Consultation) -> str:
    title = " ".join(title.split()) if isinstance(title, str) else ""
    if not title:
        moment = timezone.localtime(consultation.started_at or timezone.now())
        title = _("Annotated snapshot of the video consultation, %(when)s") % {
            "when": date_format(moment, "SHORT_DATETIME_FORMAT")
        }
    return title[:200]


def do_save_snapshot(
    member: Member,
    image: UploadedFile,
    title: Any = "",
    *,
    request: HttpRequest | None = None,
) -> DocumentReference:
    """A clinician saves an annotated PNG to the patient's record (audited)."""
    if not member.is_clinician or member.access is None or member.user is None:
        raise NotAllowed(_("Only a clinician of the consultation may save a snapshot."))
    limit = settings.RECORDS_MAX_UPLOAD_BYTES
    if image.size is not None and image.size > limit:
        raise TooLarge(
            _("The picture is too large: the limit is %(limit)s.")
            % {"limit": filesizeformat(limit)}
        )
    content = bytes(image.read(limit + 1))
    if len(content) > limit:
        raise TooLarge(
            _("The picture is too large: the limit is %(limit)s.")
            % {"limit": filesizeformat(limit)}
        )
    if not content.startswith(PNG_SIGNATURE):
        raise ConsultError(_("A snapshot is a PNG picture."))
    consultation = member.consultation
    if consultation.patient_id is None:
        raise NotAllowed(_("A staff room has no record to save a snapshot to."))
    try:
        stored = store_file(content, "snapshot.png")
    except RecordError as error:
        raise ConsultError(str(error)) from None
    try:
        with transaction.atomic():
            encounter_id = (
                Consultation.objects.filter(pk=consultation.pk)
                .values_list("encounter_id", flat=True)
                .first()
            )
            document = DocumentReference.objects.create(
                patient_id=consultation.patient_id,
                title=_title(title, consultation),
                category=DocumentReference.Category.IMAGING,
                sensitivity=Sensitivity.NORMAL,
                recorded_by=member.user,
                encounter_id=encounter_id,
                **stored.fields(),
            )
            audit(
                Action.CREATE,
                request=request,
                actor=member.user,
                obj=document,
                patient_id=str(consultation.patient_id),
                detail=member.access.audit_detail(
                    what="document",
                    size=document.size,
                    consultation=consultation.pk,
                    snapshot=True,
                ),
            )
    except BaseException:
        stored.discard()
        raise
    return document
