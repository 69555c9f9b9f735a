"""Documents and photos of the record: list, upload, download, thumbnail.

The list and the upload serve both portals (`pid` in the clinic, None for the signed-in
patient); downloads have one address for everybody and go through `get_item_for_user`.
"""

from __future__ import annotations

import logging
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from apps.accounts.decorators import View, staff_required
from apps.accounts.models import User
from apps.audit.models import Action
from apps.core.crypto import DecryptionError

from ..access import get_item_for_user
from ..forms.documents import DocumentFilterForm, DocumentUploadForm
from ..models import DocumentReference, Sensitivity
from ..services import RecordError
from ..services.documents import do_upload_document, open_document
from .common import chart_url, paginate, patient_access, render_chart

logger = logging.getLogger(__name__)


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _portal_view(view: View) -> View:
    """Clinic addresses (with `pid`) are for staff; the patient's own need a signed-in user."""
    clinic = staff_required(view)
    portal = login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if kwargs.get("pid") is not None:
            return clinic(request, *args, **kwargs)
        return portal(request, *args, **kwargs)

    return wrapper


def _upload_url(pid: int | None) -> str:
    if pid is None:
        return reverse("records:my_document_upload")
    return reverse("records:document_upload", args=[pid])


@_portal_view
def documents_list(request: HttpRequest, pid: int | None = None) -> HttpResponse:
    access = patient_access(request, pid, "documents")
    form = DocumentFilterForm(request.GET or None)
    category = form.cleaned_data["category"] if form.is_valid() else ""
    rows = access.visible(DocumentReference.objects.select_related("recorded_by")).order_by(
        "-recorded_at", "-pk"
    )
    if category:
        rows = rows.filter(category=category)
    context = {
        "form": form,
        "page": paginate(request, rows),
        "query": f"category={category}" if category else "",
        "upload_url": _upload_url(pid),
    }
    return render_chart(request, access, "documents", "records/documents.html", context)


@_portal_view
def upload(request: HttpRequest, pid: int | None = None) -> HttpResponse:
    posting = request.method == "POST"
    # A successful upload audits the creation; showing the form is a read of the record.
    access = patient_access(request, pid, "document-upload", action=None if posting else "read")
    form = DocumentUploadForm(
        request.POST if posting else None,
        request.FILES if posting else None,
        allowed=None if access.is_patient_self else access.sensitivities,
        max_bytes=settings.RECORDS_MAX_UPLOAD_BYTES,
    )
    if posting and form.is_valid():
        data = form.cleaned_data
        try:
            do_upload_document(
                access,
                data["file"],
                title=data["title"],
                category=data["category"],
                sensitivity=data.get("sensitivity") or Sensitivity.NORMAL,
                request=request,
            )
        except RecordError as error:
            form.add_error("file", str(error))
        else:
            messages.success(request, _("The document was added to the record."))
            return redirect(chart_url(access, "documents"))
    status = 400 if form.errors else 200
    return render_chart(
        request,
        access,
        "documents",
        "records/document_upload.html",
        {"form": form, "list_url": chart_url(access, "documents")},
        status=status,
    )


def _file_response(
    content: bytes, content_type: str, filename: str, *, as_attachment: bool
) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    disposition = content_disposition_header(as_attachment, filename or "document")
    response["Content-Disposition"] = disposition or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store, private"
    # Even if a browser were to render it, nothing in it may run or load anything.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def _open(document: DocumentReference, *, thumbnail: bool) -> bytes:
    try:
        return open_document(document, thumbnail=thumbnail)
    except (FileNotFoundError, DecryptionError):
        logger.exception("document %s: stored file missing or unreadable", document.pk)
        raise Http404 from None


@require_GET
@login_required
def download(request: HttpRequest, did: int) -> HttpResponse:
    document, _access = get_item_for_user(
        _user(request), DocumentReference, did, request=request, what="document"
    )
    content = _open(document, thumbnail=False)
    return _file_response(content, document.content_type, document.filename, as_attachment=True)


@require_GET
@login_required
def thumbnail(request: HttpRequest, did: int) -> HttpResponse:
    document, _access = get_item_for_user(
        _user(request),
        DocumentReference,
        did,
        request=request,
        what="document-thumbnail",
        action=Action.READ,
    )
    if not document.thumbnail_name:
        raise Http404
    content = _open(document, thumbnail=True)
    stem = document.filename.rsplit(".", 1)[0] or "document"
    return _file_response(content, "image/jpeg", f"{stem}-thumbnail.jpg", as_attachment=False)
