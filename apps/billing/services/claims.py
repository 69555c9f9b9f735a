"""Claims: an invoice sent to its insurer as a FHIR Claim, through the insurer's connector.

- `do_send_claim` (billing staff) creates the Claim row and queues `submit_claim` on commit.
- `submit_claim` sends it once, through `Insurer.connector`:
  - "fhir": a plain FHIR create, `POST {claim_url}/Claim` (not `Claim/$submit`: a create is what
    every FHIR server takes, and the insurer answers with its ClaimResponse, or a Bundle holding
    it), with `Idempotency-Key: <claim.idempotency_key>`, the same on every attempt, so that an
    insurer that registered a request whose answer we lost does not register the claim twice.
    A 5xx, 408/409/425/429, a timeout or a connection error is retried at once a few times with
    a short pause (`QUICK_TRIES`), then left SUBMITTED without a response for the beat
    (`retry_due_claims`) with a growing delay, and FAILED after BILLING_CLAIM_ATTEMPTS requests.
    A 2xx: the ClaimResponse's outcome decides (complete or partial → ACCEPTED, error →
    REJECTED, queued → stays SUBMITTED with the answer kept: adjudication comes later). Other
    4xx: 400/422 → REJECTED (the insurer refused the claim; the OperationOutcome says why),
    401/403/404/… → FAILED (our configuration is wrong, not the claim).
  - "file": the Claim JSON written atomically to BILLING_CLAIM_DIR/<insurer GLN>/<invoice
    number>.json (SUBMITTED); an insurer or a clearing house collects the files.
- Nothing raises out of `submit_claim`: every failure is recorded on the claim (`last_error`)
  and each submission is audited (an export of patient data to the insurer).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.audit.models import Action, Outcome
from apps.audit.services import record as audit
from apps.records.access import Via, deny
from apps.records.fhir import validate

from ..access import get_invoice_for_user
from ..fhir import claim_to_fhir, claims_with_related
from ..models import Claim, Insurer, Invoice
from . import BillingError

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"
# Requests sent in one `submit_claim` call, and the pauses between them (seconds).
QUICK_TRIES = 3
RETRY_PAUSES: tuple[float, ...] = (1.0, 3.0)
# Answers worth repeating the same request for: the insurer may do it next time.
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})
REJECTING_STATUSES = frozenset({400, 422})
MAX_ANSWER_BYTES = 1_000_000
PENDING = (Claim.Status.QUEUED, Claim.Status.SUBMITTED)


@dataclass(frozen=True)
class Result:
    """What one submission attempt gave."""

    status: str  # the claim's new status
    error: str = ""
    response: dict[str, Any] | None = None
    retry: bool = False  # transient: the same request may succeed later


def claim_resource(claim: Claim) -> dict[str, Any]:
    """The claim as sent to the insurer: a FHIR R4 Claim, validated (FhirError if not).

    Without our row's meta and submission state, so that every attempt sends the same body:
    an insurer may refuse a repeated Idempotency-Key with a different payload.
    """
    resource = claim_to_fhir(claim)
    resource.pop("meta", None)
    resource.pop("extension", None)
    validate(resource)
    return resource


# ---------------------------------------------------------------------------------------------
# Sending (billing staff)


def _check_claimable(invoice: Invoice) -> Insurer:
    insurer = invoice.insurer
    if invoice.status == Invoice.Status.CANCELLED:
        raise BillingError(_("A cancelled invoice cannot be sent to the insurer."))
    if insurer is None or invoice.coverage_id is None:
        raise BillingError(_("This invoice has no insurer to send a claim to."))
    if insurer.connector == Insurer.Connector.NONE:
        raise BillingError(
            _("%(insurer)s does not take electronic claims.") % {"insurer": insurer.name}
        )
    if insurer.connector == Insurer.Connector.FHIR and not insurer.claim_url:
        raise BillingError(
            _("%(insurer)s has no address for FHIR claims.") % {"insurer": insurer.name}
        )
    previous = invoice.claims.filter(status__in=[*PENDING, Claim.Status.ACCEPTED]).first()
    if previous is not None:
        if previous.status == Claim.Status.ACCEPTED:
            raise BillingError(_("The insurer has already accepted a claim for this invoice."))
        raise BillingError(_("A claim for this invoice is already on its way to the insurer."))
    return insurer


def do_send_claim(
    user: User, invoice: Invoice | int, *, request: HttpRequest | None = None
) -> Claim:
    """Send the invoice to its insurer as a claim (billing staff of its organisation only)."""
    invoice_id = invoice.pk if isinstance(invoice, Invoice) else invoice
    found, access = get_invoice_for_user(
        user, invoice_id, request=request, what="claim", action=None
    )
    if access.via != Via.BILLING:
        raise deny(
            user,
            request=request,
            what="claim",
            object_type="billing.invoice",
            object_id=invoice_id,
            patient_id=found.patient_id,
        )
    from ..tasks import submit_claim as submit_task

    with transaction.atomic():
        # Locked: two clicks (or two staff members) cannot send the same invoice twice.
        locked = (
            Invoice.objects.select_for_update(of=("self",))
            .select_related("insurer")
            .get(pk=found.pk)
        )
        insurer = _check_claimable(locked)
        claim = Claim.objects.create(invoice=locked, insurer=insurer, created_by=user)
        audit(
            Action.CREATE,
            request=request,
            actor=user,
            obj=claim,
            patient_id=str(locked.patient_id),
            detail=access.audit_detail(
                what="claim",
                invoice=locked.number,
                insurer=insurer.gln,
                connector=insurer.connector,
            ),
        )
        submit_task.delay_on_commit(claim.pk)  # type: ignore[attr-defined] # DjangoTask
    return claim


# ---------------------------------------------------------------------------------------------
# Connectors


class FhirClaimConnector:
    """POST the Claim to the insurer's FHIR server; one HTTP request per `send`."""

    def send(self, claim: Claim, resource: dict[str, Any]) -> Result:
        base = claim.insurer.claim_url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            return Result(Claim.Status.FAILED, f"The claim address {base!r} is not an http(s) URL.")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            f"{base}/Claim",
            data=json.dumps(resource).encode(),
            headers={
                "Content-Type": FHIR_JSON,
                "Accept": FHIR_JSON,
                "Idempotency-Key": str(claim.idempotency_key),
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(  # noqa: S310 - the scheme is checked above
                request, timeout=settings.BILLING_CLAIM_TIMEOUT
            ) as answer:
                return _accepted(answer.status, answer.read(MAX_ANSWER_BYTES))
        except urllib.error.HTTPError as error:
            return _refused(error.code, _read(error))
        except (OSError, http.client.HTTPException) as error:
            # Refused connections, timeouts (also while reading the answer), resets.
            return Result(
                Claim.Status.SUBMITTED, f"No answer from the insurer: {error}", retry=True
            )


def _read(error: urllib.error.HTTPError) -> bytes:
    try:
        return error.read(MAX_ANSWER_BYTES)
    except (OSError, http.client.HTTPException):
        return b""


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        return None


def _outcome_message(data: Any) -> str:
    """The issues of an OperationOutcome (or a ClaimResponse's errors), as one line."""
    if not isinstance(data, dict):
        return ""
    texts = []
    for issue in _dicts(data.get("issue")):
        details = issue.get("details")
        detail_text = details.get("text") if isinstance(details, dict) else None
        texts.append(str(issue.get("diagnostics") or detail_text or issue.get("code") or ""))
    if data.get("disposition"):
        texts.append(str(data["disposition"]))
    for error in _dicts(data.get("error")):
        code = error.get("code")
        coding = next(iter(_dicts(code.get("coding"))), {}) if isinstance(code, dict) else {}
        texts.append(str(coding.get("display") or coding.get("code") or ""))
    return "; ".join(t for t in texts if t)


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _claim_response(data: Any) -> dict[str, Any] | None:
    """The ClaimResponse of an answer: the resource itself or the first one in a Bundle."""
    if not isinstance(data, dict):
        return None
    if data.get("resourceType") == "ClaimResponse":
        return data
    if data.get("resourceType") == "Bundle":
        for entry in data.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "ClaimResponse":
                return resource
    return None


def _accepted(status: int, body: bytes) -> Result:
    """A 2xx: the insurer took the claim; its ClaimResponse says what it made of it."""
    data = _json(body)
    found = _claim_response(data)
    if found is None:
        # Registered, but not adjudicated yet (or an answer we cannot read): keep what came.
        kept = data if isinstance(data, dict) else {"httpStatus": status}
        return Result(Claim.Status.SUBMITTED, "", kept)
    outcome = found.get("outcome")
    if outcome in ("complete", "partial"):
        return Result(Claim.Status.ACCEPTED, "", found)
    if outcome == "error":
        message = _outcome_message(found) or "The insurer rejected the claim."
        return Result(Claim.Status.REJECTED, message, found)
    return Result(Claim.Status.SUBMITTED, "", found)


def _refused(status: int, body: bytes) -> Result:
    data = _json(body)
    message = _outcome_message(data) or f"HTTP {status}"
    if status >= 500 or status in TRANSIENT_STATUSES:
        return Result(Claim.Status.SUBMITTED, f"HTTP {status}: {message}", retry=True)
    kept = data if isinstance(data, dict) else None
    if status in REJECTING_STATUSES:
        return Result(Claim.Status.REJECTED, message, kept)
    return Result(Claim.Status.FAILED, f"HTTP {status}: {message}", kept)


class FileClaimConnector:
    """Write the Claim JSON where the insurer's files are collected, atomically."""

    def send(self, claim: Claim, resource: dict[str, Any]) -> Result:
        folder = Path(settings.BILLING_CLAIM_DIR) / claim.insurer.gln
        target = folder / f"{claim.invoice.number}.json"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".part")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(json.dumps(resource, indent=2, ensure_ascii=False).encode())
                    file.flush()
                    os.fsync(file.fileno())
                # A reader sees the previous file or the whole new one, never half of it.
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            return Result(Claim.Status.QUEUED, f"Cannot write {target}: {error}", retry=True)
        return Result(Claim.Status.SUBMITTED, "", {"file": str(target)})


CONNECTORS: dict[str, type[FhirClaimConnector] | type[FileClaimConnector]] = {
    Insurer.Connector.FHIR: FhirClaimConnector,
    Insurer.Connector.FILE: FileClaimConnector,
}


# ---------------------------------------------------------------------------------------------
# Submitting (the worker)


def _pending(claim: Claim) -> bool:
    """Whether the claim still has to reach its insurer."""
    if claim.status == Claim.Status.QUEUED:
        return True
    return claim.status == Claim.Status.SUBMITTED and claim.response is None


def _attempt(claim: Claim, resource: dict[str, Any]) -> Result:
    connector = CONNECTORS.get(claim.insurer.connector)
    if connector is None:
        return Result(Claim.Status.FAILED, f"{claim.insurer.name} takes no electronic claims.")
    limit = settings.BILLING_CLAIM_ATTEMPTS
    result = Result(Claim.Status.FAILED, "No attempt left.")
    for n in range(min(QUICK_TRIES, max(0, limit - claim.attempts))):
        if n:
            time.sleep(RETRY_PAUSES[min(n - 1, len(RETRY_PAUSES) - 1)])
        claim.attempts += 1
        result = connector().send(claim, resource)
        if not result.retry:
            break
    if result.retry and claim.attempts >= limit:
        return Result(Claim.Status.FAILED, f"{result.error} (gave up after {claim.attempts} tries)")
    return result


def submit_claim(claim_id: int) -> str:
    """Send the claim to its insurer once (with quick retries); its status afterwards."""
    try:
        return _submit(claim_id)
    except Exception as error:  # the worker must go on: record what went wrong
        logger.exception("claim %s could not be submitted", claim_id)
        Claim.objects.filter(pk=claim_id, status__in=PENDING).update(
            status=Claim.Status.FAILED,
            last_error=f"Internal error: {error}"[:500],
            updated_at=timezone.now(),
        )
        return Claim.Status.FAILED


def _submit(claim_id: int) -> str:
    with transaction.atomic():
        # Held while sending: the task and the beat never send the same claim at once (the
        # other one skips it); the idempotency key covers what a crash could leave behind.
        claim = (
            claims_with_related(Claim.objects.all())
            .select_for_update(of=("self",), skip_locked=True)
            .filter(pk=claim_id)
            .first()
        )
        if claim is None:
            current = Claim.objects.filter(pk=claim_id).values_list("status", flat=True).first()
            return current or "missing"
        if not _pending(claim):
            return claim.status
        if claim.invoice.status == Invoice.Status.CANCELLED:
            # Credited in full while the claim waited: there is nothing to claim any more.
            result = Result(Claim.Status.FAILED, "The invoice was cancelled before it was sent.")
        else:
            result = _attempt(claim, claim_resource(claim))
        claim.status = result.status
        claim.last_error = result.error[:500]
        if result.response is not None:
            claim.response = result.response
        if claim.submitted_at is None and claim.status != Claim.Status.QUEUED:
            claim.submitted_at = timezone.now()
        claim.save()
        audit(
            Action.EXPORT,
            obj=claim,
            patient_id=str(claim.invoice.patient_id),
            outcome=Outcome.FAILURE if claim.status == Claim.Status.FAILED else Outcome.SUCCESS,
            detail={
                "what": "claim",
                "invoice": claim.invoice.number,
                "insurer": claim.insurer.gln,
                "connector": claim.insurer.connector,
                "status": claim.status,
                "attempts": claim.attempts,
                "error": claim.last_error,
            },
        )
        return claim.status


def _delay(attempts: int) -> dt.timedelta:
    """How long a claim waits after its last try: 1, 2, 4 … minutes, at most an hour."""
    return dt.timedelta(minutes=min(60, 2 ** min(attempts, 6)))


def retry_due_claims() -> int:
    """Queue the claims still on their way whose delay has passed (beat); how many."""
    from ..tasks import submit_claim as submit_task

    now = timezone.now()
    candidates = Claim.objects.filter(
        Q(status=Claim.Status.QUEUED)
        | Q(status=Claim.Status.SUBMITTED, response__isnull=True, insurer__connector="fhir"),
        attempts__lt=settings.BILLING_CLAIM_ATTEMPTS,
    ).values_list("pk", "attempts", "updated_at")
    due = [pk for pk, attempts, updated_at in candidates if updated_at <= now - _delay(attempts)]
    for pk in due:
        submit_task.delay(pk)
    return len(due)
