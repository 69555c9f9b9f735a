"""Billing as FHIR ChargeItem, Invoice, Coverage and Claim (read and search only).

Each is in its patient's compartment (patient_path "patient"; a Claim through its invoice), and
the billing access rule (`apps.billing.access`) narrows what `scope.py` lets through
(`restrict`):
- a patient's token: their own;
- billing staff: those of the patients of their organisation (`scope.ADMINISTRATIVE_TYPES`);
- a clinician: the ChargeItems (they review them) and Coverages (administrative data they need)
  of the patients whose care team they are on; never Invoices or Claims, and an emergency
  (break-the-glass) access opens the record, not its billing;
- a system token: every row its scopes name.
The mapping is `apps.billing.fhir`; billing happens in the billing workspace.
"""

from __future__ import annotations

from typing import Any

from django.db.models import CharField, Model, QuerySet, Value

from apps.accounts.models import CLINICAL_ROLES
from apps.billing.fhir import (
    SYS_INVOICE,
    charge_to_fhir,
    charges_with_related,
    claim_to_fhir,
    claims_with_related,
    coverage_to_fhir,
    coverages_with_related,
    invoice_to_fhir,
    invoices_with_related,
)
from apps.billing.models import ChargeItem, Claim, Coverage, Invoice
from apps.records.access import patients_for_user
from apps.records.fhir import SYS_INSURANCE_CARD

from .auth import USER, Caller
from .registry import DATE, REFERENCE, TOKEN, ResourceType, SearchParam, register
from .scope import billing_organization


class BillingType(ResourceType):
    """A billing type: its rows loaded with what the mapper reads, under the billing rule."""

    # Clinicians of the care team may read this type (ChargeItem, Coverage), or nobody but
    # billing staff, the patient and systems (Invoice, Claim).
    care_team_reads = False

    def load(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """`queryset` with what the mapper reads, in a fixed number of queries."""
        return queryset

    def queryset(self, model: type[Model]) -> QuerySet[Any]:
        return self.load(super().queryset(model))

    def restrict(self, caller: Caller, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if caller.kind != USER:
            return queryset  # the patient's own compartment, or a system's scopes
        if billing_organization(caller) is not None:
            return queryset  # `scope` kept their organisation's patients
        user = caller.user
        if user is None or user.role not in CLINICAL_ROLES or not self.care_team_reads:
            return queryset.none()
        column = f"{self.patient_path}__in"
        return queryset.filter(**{column: patients_for_user(user).values("pk")})


class ChargeItemType(BillingType):
    care_team_reads = True

    def load(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return charges_with_related(queryset)


class CoverageType(BillingType):
    care_team_reads = True

    def load(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # Every coverage is "active" (its period says whether it is current): searchable too.
        active = Value("active", output_field=CharField())
        return coverages_with_related(queryset).annotate(fhir_status=active)


class InvoiceType(BillingType):
    def load(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return invoices_with_related(queryset)


class ClaimType(BillingType):
    def load(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return claims_with_related(queryset)


def _params(path: str, *params: SearchParam) -> dict[str, SearchParam]:
    """`_id`, `_lastUpdated`, `patient` (and `subject` or the type's own name for it)."""
    patient = SearchParam("patient", REFERENCE, (f"{path}__fhir_id",), targets=("Patient",))
    found = {
        "_id": SearchParam("_id", TOKEN, ("fhir_id",)),
        "_lastUpdated": SearchParam("_lastUpdated", DATE, ("updated_at",), sortable=True),
        "patient": patient,
    }
    found.update((p.name, p) for p in params)
    return found


def _subject(name: str, path: str) -> SearchParam:
    return SearchParam(name, REFERENCE, (f"{path}__fhir_id",), targets=("Patient",))


register(
    ChargeItemType(
        "ChargeItem",
        (ChargeItem,),
        charge_to_fhir,
        patient_path="patient",
        params=_params(
            "patient",
            _subject("subject", "patient"),
            SearchParam(
                "status",
                TOKEN,
                ("status__fhir",),
                documentation="planned (to review), billable, billed, aborted.",
            ),
            SearchParam("occurrence", DATE, ("performed_at",), sortable=True),
            SearchParam(
                "code", TOKEN, ("code__code",), documentation="The tariff code, e.g. AA.00.0010."
            ),
            SearchParam("context", REFERENCE, ("encounter__fhir_id",), targets=("Encounter",)),
        ),
        default_sort="-performed_at",
        includes=("patient",),
    )
)
register(
    InvoiceType(
        "Invoice",
        (Invoice,),
        invoice_to_fhir,
        patient_path="patient",
        params=_params(
            "patient",
            _subject("subject", "patient"),
            SearchParam(
                "status",
                TOKEN,
                ("status__fhir",),
                documentation="issued (open), balanced (paid), cancelled.",
            ),
            SearchParam("date", DATE, ("issued_at",), sortable=True),
            SearchParam(
                "identifier",
                TOKEN,
                (f"={SYS_INVOICE}|number",),
                documentation=f"The invoice number ({SYS_INVOICE}|YYYY-NNNNNN).",
            ),
        ),
        default_sort="-issued_at",
        includes=("patient",),
    )
)
register(
    CoverageType(
        "Coverage",
        (Coverage,),
        coverage_to_fhir,
        patient_path="patient",
        params=_params(
            "patient",
            _subject("beneficiary", "patient"),
            SearchParam(
                "status",
                TOKEN,
                ("=http://hl7.org/fhir/fm-status|fhir_status",),
                documentation="Always active (the period says whether it is current).",
            ),
            SearchParam(
                "identifier",
                TOKEN,
                (f"={SYS_INSURANCE_CARD}|member_number",),
                documentation="The insured number.",
            ),
            SearchParam("payor", TOKEN, ("insurer__gln",), documentation="The insurer's GLN."),
        ),
        default_sort="-valid_from",
        includes=("patient",),
    )
)
register(
    ClaimType(
        "Claim",
        (Claim,),
        claim_to_fhir,
        patient_path="invoice__patient",
        params=_params(
            "invoice__patient",
            SearchParam(
                "status",
                TOKEN,
                ("invoice__status__fhir_claim",),
                documentation="active, or cancelled with its invoice.",
            ),
            SearchParam("created", DATE, ("created_at",), sortable=True),
            SearchParam(
                "identifier",
                TOKEN,
                (f"={SYS_INVOICE}|invoice__number",),
                documentation=f"The invoice's number ({SYS_INVOICE}|YYYY-NNNNNN).",
            ),
            SearchParam("insurer", TOKEN, ("insurer__gln",), documentation="The insurer's GLN."),
        ),
        default_sort="-created_at",
        includes=("patient",),
    )
)
