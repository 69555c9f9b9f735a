"""E-prescription pages: list and detail (both portals), new, cancel, renew, PDF, public check,
and the review of drafts written through the FHIR API (sign or discard).

Access always goes through `patient_access` / `get_item_for_user`; writes are audited by the
services. Cancel, renew and the draft pages are refused to non-staff after the item check (not
with `staff_required`) so that every refusal, a patient's included, leaves a denial row.
Drafts are not part of the record until signed: patients never see them, and among the staff
only the physicians of the care team (who may sign them) open them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.decorators import staff_required
from apps.accounts.models import Role, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.core.net import get_client_ip, get_user_agent
from apps.core.ratelimit import hit, is_limited

from ..access import PatientAccess, deny, get_item_for_user
from ..forms.prescriptions import (
    CancelForm,
    DraftLineForm,
    PrescriptionForm,
    RenewForm,
    item_formset,
)
from ..models import Patient, Prescription
from ..services import RecordError
from ..services.prescription_documents import (
    prescription_pdf,
    public_view,
    status_label,
    status_of,
    verify_prescription,
)
from ..services.prescription_drafts import (
    do_change_draft_line,
    do_discard_draft,
    do_remove_draft_line,
    do_sign_draft,
    may_sign_draft,
    review_draft,
)
from ..services.prescriptions import (
    MAX_ITEMS,
    PrescriptionWarning,
    PrescriptionWarnings,
    do_cancel_prescription,
    do_renew_prescription,
    do_sign_prescription,
    may_cancel,
)
from .common import paginate, patient_access, render_chart

# Public verification: generous for pharmacies, tight for guessing (tokens are 192-bit anyway).
VERIFY_LIMIT = 120
VERIFY_MISS_LIMIT = 20
VERIFY_WINDOW = 15 * 60


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def _refuse(request: HttpRequest, what: str, prescription: Prescription) -> Exception:
    return deny(
        _user(request),
        request=request,
        what=what,
        object_type="records.prescription",
        object_id=prescription.pk,
        patient_id=prescription.patient_id,
    )


@login_required
def prescriptions_list(request: HttpRequest, pid: int | None = None) -> HttpResponse:
    user = _user(request)
    if pid is not None and not user.is_staff_member:
        # Patients read their prescriptions at their own address, never the clinic's.
        known = Patient.objects.filter(pk=pid).exists()
        raise deny(
            user,
            request=request,
            what="prescriptions",
            object_id=pid,
            patient_id=pid if known else "",
        )
    access = patient_access(request, pid, "prescriptions")
    rows = access.visible(Prescription.objects.all())
    if access.is_patient_self:
        rows = rows.exclude(status=Prescription.Status.DRAFT)
    rows = (
        rows.select_related("prescriber")
        .prefetch_related("items__medication")
        # Drafts (never signed) come first: they wait for a physician.
        .order_by(F("signed_at").desc(nulls_first=True), "-pk")
    )
    page = paginate(request, rows)
    for prescription in page.object_list:
        prescription.display_status = status_of(prescription)
        prescription.display_status_label = (
            _("draft — to sign")
            if prescription.display_status == "draft"
            else status_label(prescription.display_status)
        )
    context = {
        "page": page,
        "may_prescribe": user.role == Role.PHYSICIAN,
        "may_sign_drafts": may_sign_draft(access, user),
    }
    return render_chart(request, access, "prescriptions", "records/prescriptions.html", context)


@staff_required
def prescription_new(request: HttpRequest, pid: int) -> HttpResponse:
    posting = request.method == "POST"
    access = patient_access(request, pid, "prescription-new", action=None if posting else "read")
    form = PrescriptionForm(request.POST or None)
    lines = _int(request.GET.get("lines"), default=3)
    formset = item_formset(lines)(request.POST or None, prefix="items")
    warnings: list[PrescriptionWarning] = []
    if posting and form.is_valid() and formset.is_valid():
        try:
            prescription = do_sign_prescription(
                access,
                _user(request),
                formset.items(),
                override_reason=form.cleaned_data["override_reason"],
                acknowledged=form.cleaned_data["acknowledged"],
                valid_days=form.cleaned_data["valid_days"],
                request=request,
            )
        except PrescriptionWarnings as stop:
            warnings = stop.warnings
            form = _ask_for_reason(form, stop)
        except RecordError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The prescription is signed."))
            return redirect("records:prescription", prescription.pk)
    if posting:
        # Signing failed and the page shows the record again: that is a read.
        audit(
            Action.READ,
            request=request,
            obj=access.patient,
            patient_id=str(access.patient.pk),
            detail=access.audit_detail(what="prescription-new"),
        )
    status = 400 if posting else 200
    context = {
        "form": form,
        "formset": formset,
        "warnings": warnings,
        "more_lines": min(lines + 3, MAX_ITEMS) if lines < MAX_ITEMS else None,
    }
    return render_chart(
        request, access, "prescriptions", "records/prescription_form.html", context, status
    )


def _int(value: str | None, *, default: int) -> int:
    try:
        return int(value or default)
    except ValueError:
        return default


def _ask_for_reason(form: Any, stop: PrescriptionWarnings) -> Any:
    """The same form, bound again, with the fingerprint of the warnings now shown."""
    data = form.data.copy()
    data[form.add_prefix("acknowledged")] = stop.fingerprint
    bound = type(form)(data)
    bound.is_valid()
    bound.fields["override_reason"].required = True
    bound.fields["override_reason"].widget.attrs["required"] = True
    if form.cleaned_data.get("override_reason"):
        message = _("The warnings changed: read them again before signing.")
    else:
        message = _("Give a reason to sign despite the warnings, or change the prescription.")
    bound.add_error("override_reason", message)
    return bound


def _render_detail(
    request: HttpRequest,
    prescription: Prescription,
    access: PatientAccess,
    *,
    warnings: list[PrescriptionWarning] | None = None,
    renew_form: RenewForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = _user(request)
    staff = not access.is_patient_self and user.is_staff_member
    state = status_of(prescription)
    context = {
        "rx": prescription,
        "items": prescription.items.select_related("medication").order_by("pk"),
        "renewals": Prescription.objects.filter(renewed_from=prescription).order_by("pk"),
        "rx_status": state,
        "rx_status_label": status_label(state),
        "staff_view": staff,
        "may_cancel": staff
        and state in ("valid", "expired")
        and may_cancel(prescription, access, user),
        "may_renew": staff and user.role == Role.PHYSICIAN and state in ("valid", "expired"),
        "warnings": warnings or [],
        "renew_form": renew_form or RenewForm(),
        "cancel_form": CancelForm(),
    }
    return render_chart(
        request, access, "prescriptions", "records/prescription_detail.html", context, status
    )


def _audit_read(
    request: HttpRequest, prescription: Prescription, access: PatientAccess, what: str
) -> None:
    audit(
        Action.READ,
        request=request,
        obj=prescription,
        patient_id=str(prescription.patient_id),
        detail=access.audit_detail(what=what),
    )


@login_required
def prescription_detail(request: HttpRequest, rx: int) -> HttpResponse:
    user = _user(request)
    prescription, access = get_item_for_user(
        user,
        Prescription,
        rx,
        request=request,
        what="prescription",
        action=None,
        queryset=Prescription.objects.select_related("prescriber", "renewed_from"),
    )
    if prescription.status == Prescription.Status.DRAFT:
        if may_sign_draft(access, user):
            return redirect("records:prescription_draft", prescription.pk)
        raise _refuse(request, "prescription", prescription)
    _audit_read(request, prescription, access, "prescription")
    return _render_detail(request, prescription, access)


@login_required
def prescription_pdf_view(request: HttpRequest, rx: int) -> HttpResponse:
    prescription, access = get_item_for_user(
        _user(request),
        Prescription,
        rx,
        request=request,
        what="prescription-pdf",
        action=None,
        queryset=Prescription.objects.select_related(
            "prescriber", "patient", "patient__organization"
        ),
    )
    if prescription.status == Prescription.Status.DRAFT:
        raise _refuse(request, "prescription-pdf", prescription)  # no paper before signing
    _audit_read(request, prescription, access, "prescription-pdf")
    response = HttpResponse(prescription_pdf(prescription), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{prescription.number}.pdf"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def cancel(request: HttpRequest, rx: int) -> HttpResponse:
    user = _user(request)
    prescription, access = get_item_for_user(
        user, Prescription, rx, request=request, what="prescription-cancel", action=None
    )
    if access.is_patient_self or not user.is_staff_member:
        raise _refuse(request, "prescription-cancel", prescription)
    form = CancelForm(request.POST)
    try:
        if not form.is_valid():
            raise RecordError(_("Give the reason for cancelling."))
        do_cancel_prescription(prescription, user, form.cleaned_data["reason"], request=request)
    except RecordError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("The prescription is cancelled."))
    return redirect("records:prescription", prescription.pk)


@require_POST
@login_required
def renew(request: HttpRequest, rx: int) -> HttpResponse:
    user = _user(request)
    prescription, access = get_item_for_user(
        user, Prescription, rx, request=request, what="prescription-renew", action=None
    )
    if access.is_patient_self or not user.is_staff_member:
        raise _refuse(request, "prescription-renew", prescription)
    form = RenewForm(request.POST)
    form.is_valid()
    try:
        new = do_renew_prescription(
            prescription,
            user,
            request,
            override_reason=form.cleaned_data.get("override_reason", ""),
            acknowledged=form.cleaned_data.get("acknowledged", ""),
        )
    except PrescriptionWarnings as stop:
        # The page shows the prescription again: that is a read of the record.
        audit(
            Action.READ,
            request=request,
            obj=prescription,
            patient_id=str(prescription.patient_id),
            detail=access.audit_detail(what="prescription-renew"),
        )
        return _render_detail(
            request,
            prescription,
            access,
            warnings=stop.warnings,
            renew_form=_ask_for_reason(form, stop),
            status=400,
        )
    except RecordError as error:
        messages.error(request, str(error))
        return redirect("records:prescription", prescription.pk)
    messages.success(request, _("The prescription is renewed."))
    return redirect("records:prescription", new.pk)


def _get_draft(request: HttpRequest, rx: int, what: str) -> tuple[Prescription, PatientAccess]:
    """The prescription and access for a draft page, or 404 to anyone who may not sign it."""
    user = _user(request)
    prescription, access = get_item_for_user(
        user,
        Prescription,
        rx,
        request=request,
        what=what,
        action=None,
        queryset=Prescription.objects.select_related("prescriber", "recorded_by", "patient"),
    )
    if not user.is_staff_member or not may_sign_draft(access, user):
        raise _refuse(request, what, prescription)
    return prescription, access


@login_required
def draft(request: HttpRequest, rx: int) -> HttpResponse:
    """Review a draft (its lines and warnings) and sign it."""
    posting = request.method == "POST"
    prescription, access = _get_draft(request, rx, "prescription-draft")
    if prescription.status != Prescription.Status.DRAFT:
        messages.info(request, _("This prescription is signed already."))
        return redirect("records:prescription", prescription.pk)
    review = review_draft(prescription)
    form: Any = PrescriptionForm(
        request.POST or None, initial={"acknowledged": review.fingerprint, "valid_days": 90}
    )
    warnings = review.warnings
    if posting and form.is_valid():
        try:
            signed = do_sign_draft(
                prescription,
                access,
                _user(request),
                request=request,
                override_reason=form.cleaned_data["override_reason"],
                acknowledged=form.cleaned_data["acknowledged"],
                valid_days=form.cleaned_data["valid_days"],
            )
        except PrescriptionWarnings as stop:
            warnings = stop.warnings
            form = _ask_for_reason(form, stop)
        except RecordError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("The prescription is signed."))
            return redirect("records:prescription", signed.pk)
    # Showing the draft (again, after a refused signature) is a read of the record.
    _audit_read(request, prescription, access, "prescription-draft")
    context = {
        "rx": prescription,
        "review": review,
        "warnings": warnings,
        "form": form,
        "posted": posting,
    }
    return render_chart(
        request,
        access,
        "prescriptions",
        "records/prescription_draft.html",
        context,
        400 if posting else 200,
    )


@require_POST
@login_required
def draft_line(request: HttpRequest, rx: int, line: int) -> HttpResponse:
    """Adjust one line of a draft (dose, times a day, duration…) before signing it."""
    prescription, access = _get_draft(request, rx, "prescription-draft-line")
    form = DraftLineForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else ""
            for error in errors:
                messages.error(request, f"{label}: {error}" if label else str(error))
        return redirect("records:prescription_draft", prescription.pk)
    try:
        do_change_draft_line(
            prescription, access, _user(request), line, form.cleaned_data, request=request
        )
    except RecordError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("The line is changed. Check the warnings before signing."))
    return redirect("records:prescription_draft", prescription.pk)


@require_POST
@login_required
def remove_draft_line(request: HttpRequest, rx: int, line: int) -> HttpResponse:
    """Take one medication out of a draft before signing it."""
    prescription, access = _get_draft(request, rx, "prescription-draft-line")
    try:
        do_remove_draft_line(prescription, access, _user(request), line, request=request)
    except RecordError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, _("The line is removed from the draft."))
    return redirect("records:prescription_draft", prescription.pk)


@require_POST
@login_required
def discard_draft(request: HttpRequest, rx: int) -> HttpResponse:
    prescription, access = _get_draft(request, rx, "prescription-discard")
    try:
        do_discard_draft(prescription, access, _user(request), request=request)
    except RecordError as error:
        messages.error(request, str(error))
        return redirect("records:prescription", prescription.pk)
    messages.success(request, _("The draft is discarded."))
    return redirect("records:prescriptions", prescription.patient_id)


def verify(request: HttpRequest, token: str) -> HttpResponse:
    """Public: a pharmacist checks a paper prescription from its QR code (no sign-in)."""
    ip = get_client_ip(request) or "unknown"
    if is_limited(f"rx-verify-miss:{ip}", VERIFY_MISS_LIMIT) or not hit(
        f"rx-verify:{ip}", VERIFY_LIMIT, VERIFY_WINDOW
    ):
        response = render(
            request, "records/prescription_verify.html", {"limited": True}, status=429
        )
        response["Retry-After"] = str(VERIFY_WINDOW)
        return _private(response)
    prescription = verify_prescription(token)
    if prescription is None:
        hit(f"rx-verify-miss:{ip}", VERIFY_MISS_LIMIT, VERIFY_WINDOW)
        # The same page whatever was wrong with the token: no hint.
        response = render(request, "records/prescription_verify.html", {"rx": None}, status=404)
        return _private(response)
    # No actor even when someone is signed in: this is the public check, not a record access.
    audit(
        Action.READ,
        obj=prescription,
        patient_id=str(prescription.patient_id),
        detail={"public_verify": True},
        ip=get_client_ip(request),
        user_agent=get_user_agent(request),
    )
    context = {"rx": public_view(prescription)}
    return _private(render(request, "records/prescription_verify.html", context))


def _private(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return response
