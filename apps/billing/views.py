"""The billing staff's workspace: unbilled charges by patient, invoice generation (one patient
or a batch run followed by a progress bar), and the helpers every billing page shares.

Every view reaches billing data through `apps.billing.access`: a single object through its
`get_…_for_user` (which audits the read, or the refusal with a 404), a list through
`…_for_user` plus one `audit_listing` row per page. Changes go through the services; their
BillingError is shown on the page, with what was typed kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Min, Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.models import Organization, User
from apps.audit.models import Action
from apps.audit.services import record as audit
from apps.records.access import deny
from apps.records.models import Patient

from .access import charges_for_user, is_billing_staff
from .forms import GenerateForm
from .models import BillingRun, ChargeItem, Coverage
from .services import BillingError
from .services.invoices import do_generate_invoice, start_billing_run

PAGE_SIZE = 25
# How many patients with unbilled charges one page of the workspace lists.
WORKSPACE_PAGE_SIZE = 50


def _user(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def billing_staff(request: HttpRequest, what: str) -> User:
    """The signed-in billing staff member; anyone else is refused (audited 404)."""
    user = _user(request)
    if not is_billing_staff(user):
        raise deny(user, request=request, what=what)
    return user


def organization_of(user: User) -> Organization:
    """The organisation of a billing staff member (`billing_staff` made sure there is one)."""
    if user.organization is None:
        raise deny(user, request=None, what="billing-organization")
    return user.organization


def audit_listing(
    user: User,
    patient_ids: Iterable[Any],
    *,
    request: HttpRequest | None,
    what: str,
    object_type: str,
    count: int,
) -> None:
    """One audit row for a page of billing data shown in a list."""
    patients = {str(pk) for pk in patient_ids}
    audit(
        Action.READ,
        request=request,
        actor=user,
        object_type=object_type,
        patient_id=next(iter(patients)) if len(patients) == 1 else "",
        detail={"what": what, "count": count, "patients": len(patients)},
    )


def pdf_response(content: bytes, filename: str) -> HttpResponse:
    """A PDF download that no cache keeps and no browser sniffs into something else."""
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(True, filename) or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


def current_insurers(patient_ids: Iterable[int], on: dt.date) -> dict[int, Coverage]:
    """Each patient's basic coverage valid on `on` (one query for all of them)."""
    rows = (
        Coverage.objects.filter(
            patient_id__in=list(patient_ids), kind=Coverage.Kind.BASIC, valid_from__lte=on
        )
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gte=on))
        .select_related("insurer")
        .order_by("patient_id", "-valid_from")
    )
    found: dict[int, Coverage] = {}
    for coverage in rows:
        found.setdefault(coverage.patient_id, coverage)
    return found


# ---------------------------------------------------------------------------------------------
# The workspace


def workspace_context(request: HttpRequest, user: User) -> dict[str, Any]:
    charges = charges_for_user(user)
    totals = (
        charges.filter(status=ChargeItem.Status.CONFIRMED)
        .values("patient_id")
        .annotate(items=Count("pk"), amount=Sum("amount"), since=Min("performed_at"))
        .order_by("patient__family_name", "patient__given_names", "patient_id")
    )
    page = Paginator(totals, WORKSPACE_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    ids = [row["patient_id"] for row in rows]
    patients = Patient.objects.in_bulk(ids)
    coverages = current_insurers(ids, timezone.localdate())
    for row in rows:
        row["patient"] = patients[row["patient_id"]]
        row["coverage"] = coverages.get(row["patient_id"])
    audit_listing(
        user,
        ids,
        request=request,
        what="billing-workspace",
        object_type="billing.chargeitem",
        count=sum(row["items"] for row in rows),
    )
    summary = charges.filter(status=ChargeItem.Status.CONFIRMED).aggregate(
        amount=Sum("amount"), patients=Count("patient_id", distinct=True)
    )
    return {
        "page": page,
        "rows": rows,
        "unbilled_amount": summary["amount"] or Decimal("0.00"),
        "unbilled_patients": summary["patients"],
        "proposed": charges.filter(status=ChargeItem.Status.PROPOSED).count(),
        "runs": list(
            BillingRun.objects.filter(organization=organization_of(user)).order_by(
                "-created_at", "-pk"
            )[:5]
        ),
    }


@require_GET
@login_required
def workspace(request: HttpRequest) -> HttpResponse:
    user = billing_staff(request, "billing-workspace")
    return render(request, "billing/workspace.html", workspace_context(request, user))


@require_POST
@login_required
def generate(request: HttpRequest) -> HttpResponse:
    """One invoice of a patient's confirmed charges."""
    user = billing_staff(request, "billing-generate")
    form = GenerateForm(request.POST)
    if form.is_valid():
        try:
            invoice = do_generate_invoice(user, form.cleaned_data["patient"], request=request)
        except BillingError as error:
            form.add_error(None, str(error))
        else:
            messages.success(request, _("Invoice %(number)s issued.") % {"number": invoice.number})
            return redirect("billing:invoice", pk=invoice.pk)
    context = {**workspace_context(request, user), "generate_errors": form.non_field_errors()}
    if form.errors and not form.non_field_errors():
        context["generate_errors"] = [_("Choose a patient with unbilled charges.")]
    return render(request, "billing/workspace.html", context, status=400)


@require_POST
@login_required
def start_run(request: HttpRequest) -> HttpResponse:
    """Invoice every patient with confirmed charges, in the background."""
    user = billing_staff(request, "billing-run")
    try:
        run = start_billing_run(user)
    except BillingError as error:
        context = {**workspace_context(request, user), "generate_errors": [str(error)]}
        return render(request, "billing/workspace.html", context, status=400)
    return redirect("billing:run", pk=run.pk)


def _run_for(request: HttpRequest, pk: int, what: str) -> BillingRun:
    user = billing_staff(request, what)
    run = BillingRun.objects.filter(pk=pk, organization=organization_of(user)).first()
    if run is None:
        raise deny(user, request=request, what=what, object_type="billing.billingrun", object_id=pk)
    return run


def run_state(run: BillingRun) -> dict[str, Any]:
    """What the progress bar shows (the JSON the page polls), failures named by patient."""
    finished = run.status in (BillingRun.Status.DONE, BillingRun.Status.FAILED)
    errors = [error for error in (run.errors or []) if isinstance(error, dict)]
    names = {
        patient.pk: f"{patient.family_name} {patient.given_names}"
        for patient in Patient.objects.filter(
            pk__in=[error.get("patient_id") for error in errors],
            organization_id=run.organization_id,
        ).only("family_name", "given_names")
    }
    return {
        "status": run.status,
        "status_label": str(run.get_status_display()),
        "total": run.total,
        "done": run.done,
        "failed": run.failed,
        "finished": finished,
        "errors": [
            {
                "patient": names.get(error.get("patient_id", 0), str(error.get("patient_id", ""))),
                "error": str(error.get("error", "")),
            }
            for error in errors
        ],
    }


@require_GET
@login_required
def run_page(request: HttpRequest, pk: int) -> HttpResponse:
    run = _run_for(request, pk, "billing-run")
    return render(request, "billing/run.html", {"run": run, "state": run_state(run)})


@require_GET
@login_required
def run_progress(request: HttpRequest, pk: int) -> JsonResponse:
    run = _run_for(request, pk, "billing-run-progress")
    response = JsonResponse(run_state(run))
    response["Cache-Control"] = "no-store"
    return response
