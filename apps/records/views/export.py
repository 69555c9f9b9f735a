"""The patient's "download my data" page and its two downloads (patient portal only)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.utils import timezone, translation

from apps.accounts.models import User

from ..access import PatientAccess, deny
from ..services import export as service
from .common import patient_access, render_chart


def _own_access(request: HttpRequest, what: str) -> PatientAccess:
    """The signed-in patient's own record; anyone else gets an audited 404."""
    user: User = request.user  # type: ignore[assignment]
    if not user.is_patient or getattr(user, "patient_record", None) is None:
        raise deny(user, request=request, what=what)
    return patient_access(request, None, what, action=None)


def _download(data: bytes, content_type: str, extension: str) -> HttpResponse:
    filename = f"my-record-{timezone.localdate():%Y-%m-%d}.{extension}"
    response = HttpResponse(data, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
def export_page(request: HttpRequest) -> HttpResponse:
    access = _own_access(request, "export")
    return render_chart(request, access, "export", "records/export.html")


@login_required
def export_bundle(request: HttpRequest) -> HttpResponse:
    access = _own_access(request, "export-bundle")
    data = service.export_bundle(access, request=request)
    return _download(data, "application/fhir+json", "json")


@login_required
def export_pdf(request: HttpRequest) -> HttpResponse:
    access = _own_access(request, "export-pdf")
    data = service.export_summary_pdf(access, request=request, language=translation.get_language())
    return _download(data, "application/pdf", "pdf")
