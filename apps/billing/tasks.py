"""Celery tasks of billing: small, idempotent, each calling one service."""

from __future__ import annotations

from celery import shared_task


@shared_task
def capture_charges() -> int:
    """Propose the charges of acts that ended since the last run (beat, every minute)."""
    from .services.capture import capture_pending

    return capture_pending()


@shared_task
def retry_claims() -> int:
    """Send again the claims whose insurer did not answer (beat, every five minutes)."""
    from .services.claims import retry_due_claims

    return retry_due_claims()


@shared_task
def run_billing(run_id: int) -> None:
    """Generate the invoices of a billing run, recording its progress."""
    from .services.invoices import run_billing as run

    run(run_id)


@shared_task
def submit_claim(claim_id: int) -> str:
    """Send one claim to its insurer (queued when billing staff send an invoice)."""
    from .services.claims import submit_claim as submit

    return submit(claim_id)
