"""The billing staff's workspace: unbilled charges by patient, one invoice generated from the
page, a batch run followed by its progress, and the navigation of each role."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from apps.billing.models import BillingRun, ChargeItem, Invoice
from apps.records.models import Patient

from .pages_support import client_for


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def staff(billing_user: User, billing_profile: Any) -> Client:
    return client_for(billing_user)


def test_unbilled_charges_are_grouped_by_patient_with_insurer_count_and_amount(
    staff: Client,
    billing_user: User,
    record: Patient,
    record2: Patient,
    make_charge: Callable[..., ChargeItem],
) -> None:
    # given two confirmed charges of one patient, one of another, and one still proposed
    make_charge(record, unit_price="17.20")
    make_charge(record, code="video_more", quantity=2, unit_price="16.05")
    make_charge(record2, unit_price="40.00")
    make_charge(record2, status=ChargeItem.Status.PROPOSED)
    # when
    response = staff.get("/billing/")
    # then
    assert response.status_code == 200
    rows = {row["patient"].pk: row for row in response.context["rows"]}
    assert rows[record.pk]["items"] == 2
    assert rows[record.pk]["amount"] == Decimal("49.30")
    assert rows[record.pk]["coverage"].insurer.name == "Assura Test"
    assert rows[record2.pk]["items"] == 1
    assert rows[record2.pk]["coverage"] is None
    page = response.content.decode()
    assert "Assura Test" in page
    assert "49.30" in page
    assert "1 proposed charge still awaits" in page
    assert "Generate invoice" in page
    listing = AuditEvent.objects.filter(actor_id=billing_user.pk, action=Action.READ)
    assert listing.count() == 1
    assert listing.get().detail["what"] == "billing-workspace"


def test_generating_an_invoice_from_the_workspace_opens_it(
    staff: Client, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    # given
    charge = make_charge(record)
    # when
    response = staff.post("/billing/generate/", {"patient": record.pk}, follow=True)
    # then
    invoice = Invoice.objects.get(patient=record)
    assert response.redirect_chain[-1][0] == f"/billing/invoices/{invoice.pk}/"
    assert f"Invoice {invoice.number} issued." in response.content.decode()
    charge.refresh_from_db()
    assert charge.status == ChargeItem.Status.INVOICED
    assert charge.invoice_id == invoice.pk


def test_generating_without_confirmed_charges_explains_why(
    staff: Client, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    make_charge(record, status=ChargeItem.Status.PROPOSED)
    response = staff.post("/billing/generate/", {"patient": record.pk})
    assert response.status_code == 400
    assert "no confirmed charges to invoice" in response.content.decode()
    assert not Invoice.objects.exists()


def test_generate_all_runs_the_batch_and_the_run_page_shows_it_done(
    staff: Client,
    record: Patient,
    record2: Patient,
    make_charge: Callable[..., ChargeItem],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    make_charge(record)
    make_charge(record2)
    # when (the task runs eagerly when the run commits)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post("/billing/runs/")
    # then
    run = BillingRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/billing/runs/{run.pk}/"
    assert Invoice.objects.count() == 2
    progress = staff.get(f"/billing/runs/{run.pk}/progress/").json()
    assert progress["finished"] is True
    assert (progress["done"], progress["total"], progress["failed"]) == (2, 2, 0)
    page = staff.get(f"/billing/runs/{run.pk}/").content.decode()
    assert '<progress id="run-progress" max="2" value="2"' in page
    assert "data-finished" in page


def test_the_run_page_follows_progress_and_names_the_failures(
    staff: Client, billing_user: User, record: Patient
) -> None:
    # given a run half-way with one failure
    run = BillingRun.objects.create(
        organization_id=billing_user.organization_id,
        started_by=billing_user,
        status=BillingRun.Status.RUNNING,
        total=4,
        done=1,
        failed=1,
        errors=[{"patient_id": record.pk, "error": "No billing profile."}],
    )
    # when
    state = staff.get(f"/billing/runs/{run.pk}/progress/").json()
    page = staff.get(f"/billing/runs/{run.pk}/").content.decode()
    # then
    assert state["finished"] is False
    assert state["errors"] == [
        {"patient": f"{record.family_name} {record.given_names}", "error": "No billing profile."}
    ]
    assert 'max="4" value="2"' in page
    assert "No billing profile." in page
    assert "data-progress-url" in page
    assert "data-finished" not in page


def test_generate_all_with_nothing_to_invoice_says_so(staff: Client, record: Patient) -> None:
    response = staff.post("/billing/runs/")
    assert response.status_code == 400
    assert "There are no confirmed charges to invoice." in response.content.decode()
    assert not BillingRun.objects.exists()


def test_another_organisations_run_is_not_shown(
    staff: Client, make_user: Callable[..., User], billing_user: User
) -> None:
    from apps.accounts.models import Organization, Role

    other_org = Organization.objects.create(name="Autre", gln="7601000000075")
    other = make_user(Role.BILLING, organization=other_org)
    run = BillingRun.objects.create(organization=other_org, started_by=other, total=1)
    assert staff.get(f"/billing/runs/{run.pk}/").status_code == 404
    assert staff.get(f"/billing/runs/{run.pk}/progress/").status_code == 404


@pytest.mark.parametrize(
    ("who", "present", "absent"),
    [
        ("billing_user", ["Billing", "Invoices", "Payments"], ["My invoices", "Charges to review"]),
        ("patient", ["My invoices"], ["Billing", "Payments", "Charges to review"]),
        ("clinician", ["Charges to review"], ["My invoices", "Payments"]),
    ],
)
def test_the_navigation_shows_each_role_its_billing_pages(
    who: str, present: list[str], absent: list[str], request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    response = client_for(user).get("/notifications/")
    labels = [str(item["label"]) for item in response.context["nav_items"]]
    for label in present:
        assert label in labels
    for label in absent:
        assert label not in labels


def test_the_home_pages_show_the_billing_cards(
    record: Patient,
    patient: User,
    clinician: User,
    billing_user: User,
    make_charge: Callable[..., ChargeItem],
) -> None:
    make_charge(record, status=ChargeItem.Status.PROPOSED)
    make_charge(record)
    assert "No open invoice." in client_for(patient).get("/").content.decode()
    clinic = client_for(clinician).get("/clinic/").content.decode()
    assert "1 to review" in clinic
    billing = client_for(billing_user).get("/clinic/").content.decode()
    assert "1 patient to invoice" in billing
