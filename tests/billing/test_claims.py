"""Claims to insurers: a FHIR Claim POSTed to a live HTTP endpoint started by the test (the
insurer's FHIR server, which keeps claims by their Idempotency-Key), retries that never
register a claim twice, rejections, giving up, the file connector, and who may send."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.http import Http404
from django.utils import timezone, translation

from apps.accounts.models import Organization, Role, User
from apps.audit.models import AuditEvent
from apps.billing.fhir import SYS_CLAIM, SYS_INVOICE, tariff_system
from apps.billing.models import Claim, Coverage, Insurer, Invoice
from apps.billing.services import BillingError, claims
from apps.billing.services.claims import (
    claim_resource,
    do_send_claim,
    retry_due_claims,
    submit_claim,
)
from apps.records.fhir import SYS_GLN, SYS_INSURANCE_CARD, validate
from apps.records.models import Patient

# ---------------------------------------------------------------------------------------------
# The insurer's FHIR server


class InsurerServer:
    """A live FHIR endpoint on 127.0.0.1 acting as an insurer.

    It records every request, registers each claim once per Idempotency-Key and answers a
    repeated key with the same ClaimResponse. `plan` lists how to treat the next requests:
    "503" (busy, nothing registered), "hang" (registers the claim, then answers only after the
    client gave up), "400" (refuses the claim with an OperationOutcome), "401", "reject" (a
    ClaimResponse with outcome error); then "ok".
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.registered: dict[str, dict[str, Any]] = {}
        self.plan: list[str] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802 - the http.server hook
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server.lock:
                    server.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                    )
                    step = server.plan.pop(0) if server.plan else "ok"
                key = self.headers.get("Idempotency-Key", "")
                claim = json.loads(body)
                if step in ("503", "401"):
                    self.answer(int(step), outcome("Service unavailable"))
                elif step == "400":
                    self.answer(400, outcome("Insured number 80756000012345 unknown"))
                elif step == "hang":
                    server.register(key, claim, "complete")
                    server.release.wait(10)
                    self.answer(201, server.registered[key])
                else:
                    known = key in server.registered
                    response = server.register(
                        key, claim, "error" if step == "reject" else "complete"
                    )
                    self.answer(200 if known else 201, response)

            def answer(self, status: int, resource: dict[str, Any]) -> None:
                data = json.dumps(resource).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up waiting

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def register(self, key: str, claim: dict[str, Any], result: str) -> dict[str, Any]:
        with self.lock:
            if key not in self.registered:
                self.registered[key] = {
                    "resourceType": "ClaimResponse",
                    "id": str(uuid.uuid4()),
                    "status": "active",
                    "type": claim["type"],
                    "use": "claim",
                    "patient": {"display": claim["patient"]["display"]},
                    "created": timezone.now().isoformat(),
                    "insurer": claim["insurer"],
                    "request": {"identifier": claim["identifier"][0]},
                    "outcome": result,
                    "disposition": "Assuré inconnu" if result == "error" else "Pris en charge",
                }
            return self.registered[key]

    def keys(self) -> list[str]:
        return [r["headers"]["Idempotency-Key"] for r in self.requests]


def outcome(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }


@pytest.fixture
def insurer_server(insurer: Insurer) -> Iterator[InsurerServer]:
    """The live endpoint, as the tiers-payant insurer's claim address."""
    server = InsurerServer()
    server.thread.start()
    insurer.claim_url = server.url
    insurer.save()
    yield server
    server.release.set()
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path) -> None:
    # No pause between the quick retries: the behaviour, not the waiting, is under test.
    monkeypatch.setattr(claims, "RETRY_PAUSES", (0.0,))
    settings.BILLING_CLAIM_ATTEMPTS = 5
    settings.BILLING_CLAIM_TIMEOUT = 5
    settings.BILLING_CLAIM_DIR = tmp_path / "claims"


@pytest.fixture
def invoice(record: Patient, make_invoice: Callable[..., Invoice]) -> Invoice:
    return make_invoice(record)


def queued_claim(invoice: Invoice, by: User | None = None) -> Claim:
    assert invoice.insurer is not None
    return Claim.objects.create(invoice=invoice, insurer=invoice.insurer, created_by=by)


def last_audit() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


# ---------------------------------------------------------------------------------------------
# The Claim resource


def test_the_claim_resource_is_a_valid_r4_claim_of_the_invoice(invoice: Invoice) -> None:
    claim = queued_claim(invoice)
    coverage = invoice.coverage
    assert coverage is not None and invoice.insurer is not None

    resource = claim_resource(claim)

    validate(resource)
    assert resource["identifier"] == [
        {"system": SYS_INVOICE, "value": invoice.number},
        {"system": SYS_CLAIM, "value": str(claim.idempotency_key)},
    ]
    assert (resource["status"], resource["use"]) == ("active", "claim")
    assert resource["type"]["coding"][0]["code"] == "professional"
    assert resource["priority"]["coding"][0]["code"] == "normal"
    assert resource["patient"]["reference"] == f"Patient/{invoice.patient.fhir_id}"
    assert resource["patient"]["identifier"]["value"] == "756.1234.5678.97"
    assert resource["insurer"] == {
        "type": "Organization",
        "identifier": {"system": SYS_GLN, "value": "7601003000016"},
        "display": "Assura Test",
    }
    assert resource["provider"]["identifier"] == {"system": SYS_GLN, "value": "7601000000099"}
    assert resource["provider"]["reference"] == f"Organization/{invoice.organization.fhir_id}"
    assert resource["insurance"] == [
        {
            "sequence": 1,
            "focal": True,
            "coverage": {
                "reference": f"Coverage/{coverage.fhir_id}",
                "identifier": {"system": SYS_INSURANCE_CARD, "value": "80756000012345"},
                "display": "Assura Test",
            },
        }
    ]
    first, more, report = resource["item"]
    assert first == {
        "sequence": 1,
        "productOrService": {
            "coding": [
                {
                    "system": tariff_system("tardoc"),
                    "code": "AA.00.0010",
                    "display": "Consultation vidéo, 5 premières minutes",
                }
            ]
        },
        "servicedDate": timezone.localdate(invoice.lines.first().performed_at).isoformat(),  # type: ignore[union-attr]
        "quantity": {"value": 1},
        "unitPrice": {"value": 17.2, "currency": "CHF"},
        "net": {"value": 17.2, "currency": "CHF"},
    }
    assert (more["quantity"], more["net"]["value"]) == ({"value": 3}, 48.15)
    assert report["productOrService"]["coding"][0]["system"] == tariff_system("forfaits")
    assert resource["total"] == {"value": float(invoice.total), "currency": "CHF"}


# ---------------------------------------------------------------------------------------------
# Submitting to the live endpoint


def test_claim_submission_retry_after_a_503_from_the_live_endpoint_does_not_double_submit(
    invoice: Invoice,
    billing_user: User,
    insurer_server: InsurerServer,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given the insurer is busy at first
    insurer_server.plan = ["503"]

    # when billing staff send the claim (queued on commit, run by the worker)
    with django_capture_on_commit_callbacks(execute=True):
        claim = do_send_claim(billing_user, invoice)

    # then the same request came twice, and the insurer registered one claim
    claim.refresh_from_db()
    assert len(insurer_server.requests) == 2
    assert insurer_server.keys() == [str(claim.idempotency_key)] * 2
    assert len(insurer_server.registered) == 1
    assert claim.status == Claim.Status.ACCEPTED
    assert claim.attempts == 2 and claim.last_error == ""
    assert claim.response == insurer_server.registered[str(claim.idempotency_key)]
    assert claim.submitted_at is not None
    sent = insurer_server.requests[0]
    assert sent["path"] == "/fhir/Claim"
    assert sent["headers"]["Content-Type"] == "application/fhir+json"
    validate(sent["body"])
    assert sent["body"]["identifier"][0] == {"system": SYS_INVOICE, "value": invoice.number}
    assert insurer_server.requests[1]["body"] == sent["body"]
    # the submission is audited as an export of the patient's data to the insurer
    event = last_audit()
    assert (event.action, event.object_type) == ("export", "billing.claim")
    assert event.patient_id == str(invoice.patient_id)
    assert event.detail["status"] == "accepted" and event.detail["attempts"] == 2
    # running the task again (a late beat) sends nothing more
    assert submit_claim(claim.pk) == "accepted"
    assert len(insurer_server.requests) == 2


def test_a_timeout_then_success_registers_the_claim_once(
    invoice: Invoice, settings: Any, insurer_server: InsurerServer
) -> None:
    # the insurer registers the first request but answers after we stopped waiting
    settings.BILLING_CLAIM_TIMEOUT = 1
    insurer_server.plan = ["hang"]
    claim = queued_claim(invoice)

    assert submit_claim(claim.pk) == "accepted"

    claim.refresh_from_db()
    assert insurer_server.keys() == [str(claim.idempotency_key)] * 2
    assert len(insurer_server.registered) == 1
    assert claim.attempts == 2
    assert claim.response is not None and claim.response["outcome"] == "complete"


def test_a_refusal_rejects_the_claim_with_the_insurers_message(
    invoice: Invoice, insurer_server: InsurerServer
) -> None:
    insurer_server.plan = ["400"]
    claim = queued_claim(invoice)

    assert submit_claim(claim.pk) == "rejected"

    claim.refresh_from_db()
    assert len(insurer_server.requests) == 1  # not retried
    assert claim.last_error == "Insured number 80756000012345 unknown"
    assert claim.response is not None and claim.response["resourceType"] == "OperationOutcome"
    assert retry_due_claims() == 0


def test_a_claim_response_with_an_error_outcome_rejects_the_claim(
    invoice: Invoice, insurer_server: InsurerServer
) -> None:
    insurer_server.plan = ["reject"]
    claim = queued_claim(invoice)

    assert submit_claim(claim.pk) == "rejected"

    claim.refresh_from_db()
    assert claim.last_error == "Assuré inconnu"
    assert claim.response is not None and claim.response["outcome"] == "error"


def test_an_authentication_refusal_fails_the_claim_without_retrying(
    invoice: Invoice, insurer_server: InsurerServer
) -> None:
    insurer_server.plan = ["401"]
    claim = queued_claim(invoice)

    assert submit_claim(claim.pk) == "failed"

    claim.refresh_from_db()
    assert len(insurer_server.requests) == 1
    assert claim.last_error.startswith("HTTP 401")


def test_after_the_last_attempt_the_claim_fails(
    invoice: Invoice, insurer_server: InsurerServer
) -> None:
    # given an insurer that stays unavailable
    insurer_server.plan = ["503"] * 10
    claim = queued_claim(invoice)

    # the first run tries three times, then leaves it to the beat
    assert submit_claim(claim.pk) == "submitted"
    claim.refresh_from_db()
    assert (claim.attempts, claim.response) == (3, None)
    assert "503" in claim.last_error
    assert retry_due_claims() == 0  # not due yet

    # once its delay has passed, the beat sends it again, up to the limit of five requests
    Claim.objects.filter(pk=claim.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))
    assert retry_due_claims() == 1
    claim.refresh_from_db()
    assert claim.status == Claim.Status.FAILED
    assert claim.attempts == 5 and "gave up after 5 tries" in claim.last_error
    assert insurer_server.keys() == [str(claim.idempotency_key)] * 5
    assert insurer_server.registered == {}
    Claim.objects.filter(pk=claim.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))
    assert retry_due_claims() == 0
    assert last_audit().outcome == "failure"


def test_an_unreachable_insurer_leaves_the_claim_pending(invoice: Invoice) -> None:
    # the cast's insurer points at a closed port
    claim = queued_claim(invoice)

    assert submit_claim(claim.pk) == "submitted"

    claim.refresh_from_db()
    assert claim.attempts == 3
    assert claim.last_error.startswith("No answer from the insurer")


def test_a_claim_whose_invoice_was_cancelled_meanwhile_is_not_sent(
    invoice: Invoice, insurer_server: InsurerServer
) -> None:
    claim = queued_claim(invoice)
    Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.CANCELLED)

    assert submit_claim(claim.pk) == "failed"

    claim.refresh_from_db()
    assert insurer_server.requests == [] and claim.attempts == 0
    assert claim.last_error == "The invoice was cancelled before it was sent."


def test_an_unexpected_error_is_recorded_not_raised(
    invoice: Invoice, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(claim: Claim) -> dict[str, Any]:
        raise RuntimeError("mapping broke")

    monkeypatch.setattr(claims, "claim_resource", broken)
    claim = queued_claim(invoice)

    assert submit_claim(claim.pk) == "failed"

    claim.refresh_from_db()
    assert claim.status == Claim.Status.FAILED
    assert claim.last_error == "Internal error: mapping broke"


# ---------------------------------------------------------------------------------------------
# The file connector


@pytest.fixture
def garant_invoice(
    record2: Patient, insurer_garant: Insurer, make_invoice: Callable[..., Invoice]
) -> Invoice:
    Coverage.objects.create(
        patient=record2,
        insurer=insurer_garant,
        member_number="80756000067890",
        valid_from=dt.date(2020, 1, 1),
    )
    return make_invoice(record2)


def test_the_file_connector_writes_the_claim_file(
    garant_invoice: Invoice,
    billing_user: User,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        claim = do_send_claim(billing_user, garant_invoice)

    claim.refresh_from_db()
    folder = Path(settings.BILLING_CLAIM_DIR) / "7601003000023"
    written = folder / f"{garant_invoice.number}.json"
    assert claim.status == Claim.Status.SUBMITTED and claim.attempts == 1
    assert [p.name for p in folder.iterdir()] == [written.name]  # no temporary file left
    resource = json.loads(written.read_text())
    validate(resource)
    assert resource == claim_resource(claim)
    assert claim.response == {"file": str(written)}
    # written once: neither the beat nor a second click sends it again
    assert retry_due_claims() == 0
    with pytest.raises(BillingError):
        do_send_claim(billing_user, garant_invoice)


def test_a_claim_file_that_cannot_be_written_is_retried_later(
    garant_invoice: Invoice, settings: Any, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings.BILLING_CLAIM_DIR = blocker
    claim = queued_claim(garant_invoice)

    assert submit_claim(claim.pk) == "queued"

    claim.refresh_from_db()
    assert claim.attempts == 3 and claim.last_error.startswith("Cannot write")
    settings.BILLING_CLAIM_DIR = tmp_path / "claims"
    Claim.objects.filter(pk=claim.pk).update(updated_at=timezone.now() - dt.timedelta(hours=1))
    assert retry_due_claims() == 1
    claim.refresh_from_db()
    assert claim.status == Claim.Status.SUBMITTED and claim.attempts == 4


# ---------------------------------------------------------------------------------------------
# Sending: what may be sent, and by whom


@pytest.fixture
def in_english() -> Iterator[None]:
    """The refusals below are matched in English (the default language is French)."""
    with translation.override("en"):
        yield


@pytest.mark.usefixtures("in_english")
def test_an_invoice_cannot_be_claimed_twice(
    invoice: Invoice, billing_user: User, insurer_server: InsurerServer
) -> None:
    claim = do_send_claim(billing_user, invoice)  # queued, not yet run (no commit)
    assert claim.status == Claim.Status.QUEUED and claim.created_by == billing_user
    event = last_audit()
    assert (event.action, event.object_type) == ("create", "billing.claim")
    assert event.detail["invoice"] == invoice.number

    with pytest.raises(BillingError, match="already on its way"):
        do_send_claim(billing_user, invoice)

    assert submit_claim(claim.pk) == "accepted"
    with pytest.raises(BillingError, match="already accepted"):
        do_send_claim(billing_user, invoice.pk)
    # a rejected claim may be sent again (corrected), under a new key
    Claim.objects.filter(pk=claim.pk).update(status=Claim.Status.REJECTED)
    again = do_send_claim(billing_user, invoice)
    assert again.idempotency_key != claim.idempotency_key
    assert Claim.objects.filter(invoice=invoice).count() == 2


@pytest.mark.usefixtures("in_english")
def test_what_cannot_be_claimed(
    record: Patient,
    record2: Patient,
    billing_user: User,
    insurer: Insurer,
    make_invoice: Callable[..., Invoice],
) -> None:
    cancelled = make_invoice(record, status=Invoice.Status.CANCELLED)
    with pytest.raises(BillingError, match="cancelled"):
        do_send_claim(billing_user, cancelled)

    uninsured = make_invoice(record2)
    with pytest.raises(BillingError, match="no insurer"):
        do_send_claim(billing_user, uninsured)

    insurer.connector = Insurer.Connector.NONE
    insurer.save()
    with pytest.raises(BillingError, match="does not take electronic claims"):
        do_send_claim(billing_user, make_invoice(record))
    assert not Claim.objects.exists()


@pytest.fixture
def other_billing(make_user: Callable[..., User]) -> User:
    other = Organization.objects.create(name="Autre clinique", gln="7601000000082")
    return make_user(Role.BILLING, email="billing@other.test", organization=other)


@pytest.mark.parametrize("who", ["patient", "clinician", "outsider", "other_billing", "admin_user"])
def test_only_billing_staff_of_the_organisation_send_claims(
    who: str, invoice: Invoice, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)

    with pytest.raises(Http404):
        do_send_claim(user, invoice)

    assert not Claim.objects.exists()
    denial = last_audit()
    assert (denial.action, denial.outcome) == ("denied", "denied")
    assert denial.actor_id == user.pk
    assert denial.object_type == "billing.invoice" and denial.object_id == str(invoice.pk)
