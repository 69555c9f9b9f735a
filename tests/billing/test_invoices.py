"""Generating invoices: totals and shares, recipients, charges, batch runs, sending, refusals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.http import Http404
from django.urls import reverse
from django.utils import timezone, translation

from apps.accounts.models import Organization, Role, User
from apps.audit.models import Action, AuditEvent
from apps.billing.models import (
    BillingProfile,
    BillingRun,
    ChargeItem,
    Coverage,
    Insurer,
    Invoice,
    InvoiceSequence,
    TariffCode,
)
from apps.billing.services import BillingError
from apps.billing.services.invoices import (
    do_generate_invoice,
    do_send_to_patient,
    run_billing,
    start_billing_run,
)
from apps.billing.services.references import qr_reference
from apps.notifications.models import Notification
from apps.records.models import Patient
from tests.billing.conftest import VALID_FROM
from tests.billing.invoices_support import denials

pytestmark = pytest.mark.usefixtures("billing_profile")


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.MEDIA_ROOT = tmp_path / "media"
    # The messages checked below are the English ones (French is the default language).
    with translation.override("en"):
        yield


@pytest.fixture
def garant_record(
    make_patient: Callable[..., Patient], make_user: Callable[..., User], insurer_garant: Insurer
) -> Patient:
    chart = make_patient(make_user(Role.PATIENT))
    Coverage.objects.create(
        patient=chart, insurer=insurer_garant, member_number="123", valid_from=VALID_FROM
    )
    return chart


def test_tiers_payant_the_patient_owes_their_share_the_insurer_the_rest(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    # given: 17.20 + 2 × 16.05 = 49.30, the insurer pays 90 %
    first = make_charge(record, "video_base", 1, "17.20")
    second = make_charge(record, "video_more", 2, "16.05")

    # when
    invoice = do_generate_invoice(billing_user, record.pk)

    # then
    assert invoice.net == Decimal("49.30")
    assert invoice.vat == Decimal("0.00")
    assert invoice.total == Decimal("49.30")
    assert invoice.patient_share == Decimal("4.95")  # 4.93 rounded to 0.05
    assert invoice.insurer_share == Decimal("44.35")
    assert invoice.amount_due == Decimal("4.95")
    assert invoice.recipient == Invoice.Recipient.INSURER
    assert invoice.insurer is not None and invoice.insurer.name == "Assura Test"
    assert invoice.coverage is not None and invoice.coverage.member_number == "80756000012345"
    assert invoice.status == Invoice.Status.ISSUED
    assert invoice.issued_by == billing_user
    for charge in (first, second):
        charge.refresh_from_db()
        assert charge.status == ChargeItem.Status.INVOICED
        assert charge.invoice_id == invoice.pk
        assert charge.version == 2  # FHIR versionId follows the change


def test_tiers_garant_the_patient_owes_the_total(
    billing_user: User, garant_record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    make_charge(garant_record, "video_base", 1, "17.20")
    make_charge(garant_record, "video_more", 2, "16.05")

    invoice = do_generate_invoice(billing_user, garant_record.pk)

    assert invoice.recipient == Invoice.Recipient.PATIENT
    assert invoice.total == Decimal("49.30")
    assert invoice.patient_share == Decimal("4.95")
    assert invoice.insurer_share == Decimal("44.35")
    assert invoice.amount_due == Decimal("49.30")


def test_without_insurance_the_patient_pays_everything(
    billing_user: User, record2: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    make_charge(record2, "video_base", 1, "17.22")
    make_charge(record2, "video_more", 1, "16.05")

    invoice = do_generate_invoice(billing_user, record2.pk)

    assert invoice.insurer is None and invoice.coverage is None
    assert invoice.recipient == Invoice.Recipient.PATIENT
    assert invoice.net == Decimal("33.27")
    assert invoice.total == Decimal("33.25")
    assert invoice.patient_share == invoice.total == invoice.amount_due
    assert invoice.insurer_share == Decimal("0.00")
    assert not any(line.covered for line in invoice.lines.all())


def test_an_expired_coverage_does_not_count(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    Coverage.objects.filter(patient=record).update(
        valid_until=timezone.localdate() - dt.timedelta(days=1)
    )
    make_charge(record, "video_base", 1, "17.20")

    invoice = do_generate_invoice(billing_user, record.pk)

    assert invoice.insurer is None
    assert invoice.amount_due == Decimal("17.20")


@pytest.mark.parametrize(
    ("amounts", "total"),
    [
        (["10.02"], "10.00"),
        (["10.03"], "10.05"),
        (["5.01", "5.02"], "10.05"),
        (["10.07"], "10.05"),
        (["10.08"], "10.10"),
        (["3.33", "3.33", "3.33"], "10.00"),
    ],
)
def test_totals_are_rounded_to_five_centimes(
    billing_user: User,
    record2: Patient,
    make_charge: Callable[..., ChargeItem],
    amounts: list[str],
    total: str,
) -> None:
    for amount in amounts:
        make_charge(record2, "video_base", 1, amount)

    invoice = do_generate_invoice(billing_user, record2.pk)

    assert invoice.total == Decimal(total)
    assert invoice.amount_due == Decimal(total)


def test_vat_is_computed_per_line_and_included_in_the_shares(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    # a written report, 35.00 at 8.1 % VAT = 2.835 → 2.84
    make_charge(record, "report", 1, "35.00")
    make_charge(record, "video_base", 1, "17.20")

    invoice = do_generate_invoice(billing_user, record.pk)

    assert invoice.net == Decimal("52.20")
    assert invoice.vat == Decimal("2.84")
    assert invoice.total == Decimal("55.05")  # 55.04 → 55.05
    assert invoice.patient_share == Decimal("5.50")  # 10 % of 55.04
    assert invoice.insurer_share == Decimal("49.55")


def test_codes_the_insurer_does_not_cover_are_on_the_patient(
    billing_user: User,
    record: Patient,
    insurer: Insurer,
    codes: dict[str, TariffCode],
    make_charge: Callable[..., ChargeItem],
) -> None:
    insurer.covered_codes.add(codes["video_base"])
    make_charge(record, "video_base", 1, "17.20")
    make_charge(record, "video_more", 2, "16.05")

    invoice = do_generate_invoice(billing_user, record.pk)

    covered = {line.code: line.covered for line in invoice.lines.all()}
    assert covered == {"AA.00.0010": True, "AA.00.0020": False}
    # 10 % of 17.20 + all of 32.10 = 33.82 → 33.80
    assert invoice.patient_share == Decimal("33.80")
    assert invoice.insurer_share == Decimal("15.50")
    assert invoice.amount_due == Decimal("33.80")


def test_lines_snapshot_the_charges(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    charge = make_charge(
        record, "video_more", 3, "16.05", unit_points=Decimal("17.26"), point_value=Decimal("0.93")
    )

    invoice = do_generate_invoice(billing_user, record.pk)
    charge.code.label = "Renamed later"
    charge.code.save()

    line = invoice.lines.get()
    assert line.charge_id == charge.pk
    assert (line.tariff, line.code) == ("tardoc", "AA.00.0020")
    assert line.label == "Consultation vidéo, par 5 minutes supplémentaires"
    assert line.quantity == Decimal("3.00")
    assert line.unit_points == Decimal("17.26")
    assert line.point_value == Decimal("0.9300")
    assert line.amount == Decimal("48.15")
    assert line.performed_at == charge.performed_at


def test_number_reference_and_due_date(
    billing_user: User,
    record: Patient,
    billing_profile: BillingProfile,
    make_charge: Callable[..., ChargeItem],
) -> None:
    make_charge(record)
    today = timezone.localdate()

    invoice = do_generate_invoice(billing_user, record.pk)

    assert invoice.number == f"{today.year}-000001"
    assert (invoice.year, invoice.sequence) == (today.year, 1)
    assert invoice.reference == qr_reference(invoice.number)
    assert invoice.due_date == today + dt.timedelta(days=billing_profile.payment_days)
    assert invoice.pdf_name and len(invoice.pdf_sha256) == 64


def test_only_confirmed_charges_are_invoiced(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    confirmed = make_charge(record)
    proposed = make_charge(record, status=ChargeItem.Status.PROPOSED)
    cancelled = make_charge(record, status=ChargeItem.Status.CANCELLED)

    invoice = do_generate_invoice(billing_user, record.pk)

    assert list(invoice.charges.all()) == [confirmed]
    for charge in (proposed, cancelled):
        charge.refresh_from_db()
        assert charge.invoice_id is None


def test_nothing_to_invoice_is_refused_and_leaves_no_trace(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    make_charge(record, status=ChargeItem.Status.PROPOSED)

    with pytest.raises(BillingError, match="no confirmed charges"):
        do_generate_invoice(billing_user, record.pk)

    assert not Invoice.objects.exists()
    assert not InvoiceSequence.objects.filter(last__gt=0).exists()


def test_an_organisation_without_billing_profile_cannot_invoice(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    BillingProfile.objects.all().delete()
    make_charge(record)

    with pytest.raises(BillingError, match="billing profile"):
        do_generate_invoice(billing_user, record.pk)

    assert not Invoice.objects.exists()


def test_a_failing_pdf_rolls_the_whole_invoice_back(
    billing_user: User,
    record: Patient,
    make_charge: Callable[..., ChargeItem],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    charge = make_charge(record)

    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr("apps.billing.services.pdf.render_invoice_pdf", broken)

    with pytest.raises(RuntimeError):
        do_generate_invoice(billing_user, record.pk)

    charge.refresh_from_db()
    assert charge.status == ChargeItem.Status.CONFIRMED and charge.invoice_id is None
    assert not Invoice.objects.exists()
    assert not AuditEvent.objects.filter(object_type="billing.invoice").exists()
    stored = Path(settings.MEDIA_ROOT) / "records"
    assert not stored.exists() or not any(stored.iterdir())
    # The number was not used: the next invoice takes it.
    monkeypatch.undo()
    assert do_generate_invoice(billing_user, record.pk).sequence == 1


def test_generation_is_audited(
    billing_user: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    make_charge(record)

    invoice = do_generate_invoice(billing_user, record.pk)

    event = AuditEvent.objects.get(object_type="billing.invoice", action=Action.CREATE)
    assert event.actor_id == billing_user.pk
    assert event.object_id == str(invoice.pk)
    assert event.patient_id == str(record.pk)
    assert event.detail["number"] == invoice.number


@pytest.mark.parametrize("who", ["clinician", "outsider", "patient", "other_billing"])
def test_only_billing_staff_of_the_organisation_generate(
    who: str,
    request: pytest.FixtureRequest,
    record: Patient,
    make_user: Callable[..., User],
    make_charge: Callable[..., ChargeItem],
) -> None:
    if who == "other_billing":
        other = Organization.objects.create(name="Autre clinique", gln="7601000000082")
        user = make_user(Role.BILLING, organization=other)
    else:
        user = request.getfixturevalue(who)
    charge = make_charge(record)

    with pytest.raises(Http404):
        do_generate_invoice(user, record.pk)

    assert len(denials(user)) == 1
    charge.refresh_from_db()
    assert charge.status == ChargeItem.Status.CONFIRMED
    assert not Invoice.objects.exists()


def test_an_unknown_patient_is_a_denied_404(billing_user: User) -> None:
    with pytest.raises(Http404):
        do_generate_invoice(billing_user, 999999)

    assert len(denials(billing_user)) == 1


# ---------------------------------------------------------------------------------------------
# Batch runs


def test_a_billing_run_invoices_every_patient_and_counts_progress(
    billing_user: User,
    record: Patient,
    record2: Patient,
    make_charge: Callable[..., ChargeItem],
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_charge(record)
    make_charge(record)
    make_charge(record2)

    with django_capture_on_commit_callbacks(execute=True):
        run = start_billing_run(billing_user)

    run.refresh_from_db()
    assert run.status == BillingRun.Status.DONE
    assert (run.total, run.done, run.failed, run.errors) == (2, 2, 0, [])
    assert run.finished_at is not None
    assert set(Invoice.objects.values_list("patient_id", flat=True)) == {record.pk, record2.pk}
    assert not ChargeItem.objects.filter(status=ChargeItem.Status.CONFIRMED).exists()
    # Idempotent: running it again invoices nothing more.
    run_billing(run.pk)
    assert Invoice.objects.count() == 2


def test_a_billing_run_may_cover_chosen_patients_only(
    billing_user: User,
    record: Patient,
    record2: Patient,
    make_charge: Callable[..., ChargeItem],
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_charge(record)
    left = make_charge(record2)

    with django_capture_on_commit_callbacks(execute=True):
        run = start_billing_run(billing_user, patient_ids=[record.pk])

    run.refresh_from_db()
    assert (run.patient_ids, run.total, run.done) == ([record.pk], 1, 1)
    assert list(Invoice.objects.values_list("patient_id", flat=True)) == [record.pk]
    left.refresh_from_db()
    assert left.status == ChargeItem.Status.CONFIRMED


def test_a_failing_patient_does_not_stop_the_run(
    billing_user: User,
    record: Patient,
    record2: Patient,
    make_charge: Callable[..., ChargeItem],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_charge(record)
    make_charge(record2)
    from apps.billing.services import pdf

    real = pdf.render_invoice_pdf

    def fails_for_record2(invoice: Invoice, **kwargs: Any) -> bytes:
        if invoice.patient_id == record2.pk:
            raise BillingError("The QR-bill cannot be printed")
        return real(invoice, **kwargs)

    monkeypatch.setattr(pdf, "render_invoice_pdf", fails_for_record2)
    run = BillingRun.objects.create(organization=billing_user.organization, started_by=billing_user)

    run = run_billing(run.pk)

    assert (run.total, run.done, run.failed) == (2, 1, 1)
    assert run.errors == [{"patient_id": record2.pk, "error": "The QR-bill cannot be printed"}]
    assert run.status == BillingRun.Status.DONE
    assert Invoice.objects.get().patient_id == record.pk


def test_an_interrupted_run_resumes_where_it_stopped(
    billing_user: User,
    record: Patient,
    record2: Patient,
    make_charge: Callable[..., ChargeItem],
) -> None:
    make_charge(record)
    make_charge(record2)
    do_generate_invoice(billing_user, record.pk)
    run = BillingRun.objects.create(
        organization=billing_user.organization,
        started_by=billing_user,
        status=BillingRun.Status.RUNNING,
        total=2,
        done=1,
    )

    run = run_billing(run.pk)

    assert (run.total, run.done, run.failed) == (2, 2, 0)
    assert Invoice.objects.count() == 2


def test_a_run_that_breaks_down_says_so(
    billing_user: User,
    record: Patient,
    make_charge: Callable[..., ChargeItem],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_charge(record)

    def worker_killed(*args: Any) -> None:
        raise SystemExit(1)

    monkeypatch.setattr("apps.billing.services.invoices._invoice_one", worker_killed)
    run = BillingRun.objects.create(organization=billing_user.organization, started_by=billing_user)

    with pytest.raises(SystemExit):
        run_billing(run.pk)

    run.refresh_from_db()
    assert run.status == BillingRun.Status.FAILED
    assert run.finished_at is not None


def test_a_run_with_nothing_to_invoice_is_refused(billing_user: User, record: Patient) -> None:
    with pytest.raises(BillingError):
        start_billing_run(billing_user)

    assert not BillingRun.objects.exists()


def test_only_billing_staff_start_runs(
    clinician: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    make_charge(record)

    with pytest.raises(Http404):
        start_billing_run(clinician)

    assert len(denials(clinician)) == 1
    assert not BillingRun.objects.exists()


# ---------------------------------------------------------------------------------------------
# Sending to the patient


def test_sending_notifies_the_patient_without_amounts(
    billing_user: User, patient: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    make_charge(record)
    invoice = do_generate_invoice(billing_user, record.pk)

    do_send_to_patient(billing_user, invoice)

    notification = Notification.objects.get(user=patient)
    assert notification.kind == "billing"
    assert notification.link == reverse("billing:my_invoice", args=[invoice.pk])
    assert str(invoice.amount_due) not in notification.title + notification.body
    assert invoice.number not in notification.title + notification.body
    invoice.refresh_from_db()
    assert invoice.sent_to_patient_at is not None
    assert AuditEvent.objects.filter(
        action=Action.UPDATE, object_type="billing.invoice", object_id=str(invoice.pk)
    ).exists()


def test_the_notification_speaks_the_patients_language(
    billing_user: User, patient: User, record: Patient, make_charge: Callable[..., ChargeItem]
) -> None:
    record.preferred_language = "en"
    record.save()
    make_charge(record)
    invoice = do_generate_invoice(billing_user, record.pk)

    do_send_to_patient(billing_user, invoice)

    assert Notification.objects.get(user=patient).title == "A new invoice is available"


def test_a_patient_without_portal_account_gets_it_by_post(
    billing_user: User,
    make_patient: Callable[..., Patient],
    make_charge: Callable[..., ChargeItem],
) -> None:
    chart = make_patient()
    make_charge(chart)
    invoice = do_generate_invoice(billing_user, chart.pk)

    with pytest.raises(BillingError, match="portal account"):
        do_send_to_patient(billing_user, invoice)

    assert not Notification.objects.exists()


def test_only_billing_staff_send(
    billing_user: User,
    clinician: User,
    patient: User,
    record: Patient,
    make_charge: Callable[..., ChargeItem],
) -> None:
    make_charge(record)
    invoice = do_generate_invoice(billing_user, record.pk)

    for user in (clinician, patient):
        with pytest.raises(Http404):
            do_send_to_patient(user, invoice)
        assert len(denials(user)) == 1
    assert not Notification.objects.exists()
