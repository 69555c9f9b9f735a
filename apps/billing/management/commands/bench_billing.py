"""`manage.py bench_billing`: generate `--invoices` invoices with their PDFs; prints one JSON.

Seeds an organisation of its own with patients, coverages and confirmed charges
(apps/billing/bench.py says in what shape), then times the real batch path: a `BillingRun`
and `services.invoices.run_billing` (the body of the Celery task, run here in-process), which
for each patient calls `do_generate_invoice`: lock the charges, take the number
(`InvoiceSequence` row locked), snapshot the lines, compute the totals, render the PDF with its
QR-bill payment part (WeasyPrint), seal it (AES-GCM) under MEDIA_ROOT, write the rows and the
audit row, commit.
One process, one invoice after the other, as one Celery worker runs a billing run.

With fewer `--patients` than invoices, the invoices are made in rounds: each round gives every
patient new confirmed charges (not timed) and runs the batch again (timed).

Reported: invoices, seconds and invoices per second of the generation; per invoice (the whole
`do_generate_invoice`) and per PDF rendering p50 / p95 / max in ms, and how long each invoice
holds the numbering lock (probes wrapped around `do_generate_invoice`, `render_invoice_pdf` and
`next_number` during the run); the PDF size; SQL queries per invoice (counted by a
`connection.execute_wrapper`, which also counts with DEBUG off); memory: the resident set
before the generation and its peak during it (`VmHWM` of /proc/self/status after resetting it
through /proc/self/clear_refs; where that is not possible, `ru_maxrss`, the peak of the whole
process, seeding included: `memory.measured` says which). Checks: every invoice has a sealed
PDF that opens, the numbers are gapless, the references unique.

It refuses a database with patients that are not its own unless `--yes`. Progress goes to
stderr, the JSON alone to stdout. The bench rows and files are deleted at the end (and
leftovers of an interrupted run at the start) unless `--keep`, and the year's invoice sequence
is put back to the last remaining invoice; audit rows written meanwhile stay.
"""

from __future__ import annotations

import json
import random
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import Count, Max

from apps.accounts.models import Organization, User
from apps.billing.bench import (
    EMAIL_PREFIX,
    ORGANIZATION_NAME,
    BenchError,
    Catalogue,
    Options,
    Progress,
    Seeded,
    seed_charges,
    seed_people,
)
from apps.billing.models import (
    BillingProfile,
    BillingRun,
    ChargeItem,
    Claim,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    Payment,
)
from apps.core.benchmarks import bench_run, positive_int
from apps.records.bench import percentile
from apps.records.models import Patient
from apps.records.services.documents import storage_path

MB = 1024 * 1024

# ---------------------------------------------------------------------------------------------
# Safety and cleaning up


def foreign_patients() -> int:
    """Patients in the database that this benchmark did not make."""
    return Patient.objects.exclude(organization__name=ORGANIZATION_NAME).count()


def check_database(options: Options) -> None:
    """Refuse a database holding real records unless told it is a throwaway one."""
    if options.yes:
        return
    others = foreign_patients()
    if others:
        raise BenchError(
            f"this database holds {others} patients that are not the benchmark's: run it on a "
            "database of its own (createdb, migrate) or pass --yes if this one is a throwaway"
        )


def clean_up(progress: Progress) -> None:
    """Delete every bench row and PDF, also those of an interrupted run (audit rows stay)."""
    organizations = Organization.objects.filter(name=ORGANIZATION_NAME)
    if not organizations.exists():
        return
    progress("deleting the bench data")
    invoices = Invoice.objects.filter(organization__in=organizations)
    names = [
        name
        for pair in invoices.values_list("pdf_name", "credit_notes__pdf_name")
        for name in pair
        if name
    ]
    years = set(invoices.values_list("year", flat=True))
    patients = Patient.objects.filter(organization__in=organizations)
    with transaction.atomic():
        # Issued invoices are protected from deletion everywhere else: only the bench's own go.
        Claim.objects.filter(invoice__in=invoices).delete()
        Payment.objects.filter(invoice__in=invoices).delete()
        CreditNote.objects.filter(invoice__in=invoices).delete()
        InvoiceLine.objects.filter(invoice__in=invoices).delete()
        ChargeItem.objects.filter(patient__in=patients).delete()
        invoices.delete()
        BillingRun.objects.filter(organization__in=organizations).delete()
        patients.delete()
        User.objects.filter(
            email__startswith=EMAIL_PREFIX, email__endswith="@bench.invalid"
        ).delete()
        organizations.delete()  # its billing profile goes with it
        _rewind_sequences(years)
    for name in set(names):
        storage_path(name).unlink(missing_ok=True)


def _rewind_sequences(years: set[int]) -> None:
    """Put each year's invoice sequence back to its last remaining invoice, so that the next
    real invoice follows it without a gap."""
    for year in years:
        last = Invoice.objects.filter(year=year).aggregate(top=Max("sequence"))["top"] or 0
        InvoiceSequence.objects.filter(series="IN", year=year).update(last=last)


# ---------------------------------------------------------------------------------------------
# Probes


class Probes:
    """Time `do_generate_invoice` and `render_invoice_pdf` while the run calls them, and how
    long each invoice keeps the year's numbering row locked (from `next_number` to the
    commit): invoices made at the same time wait for each other that long."""

    def __init__(self) -> None:
        self.invoice_ms: list[float] = []
        self.pdf_ms: list[float] = []
        self.lock_ms: list[float] = []
        self.pdf_bytes: list[int] = []
        self.queries = 0
        self._restore: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> Probes:
        from apps.billing.services import invoices, pdf

        generate, render = invoices.do_generate_invoice, pdf.render_invoice_pdf
        next_number = invoices.next_number

        def timed_next_number(*args: Any, **kwargs: Any) -> Any:
            locked = time.perf_counter()
            transaction.on_commit(
                lambda: self.lock_ms.append((time.perf_counter() - locked) * 1000)
            )
            return next_number(*args, **kwargs)

        def timed_generate(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return generate(*args, **kwargs)
            finally:
                self.invoice_ms.append((time.perf_counter() - started) * 1000)

        def timed_render(*args: Any, **kwargs: Any) -> bytes:
            started = time.perf_counter()
            content = render(*args, **kwargs)
            self.pdf_ms.append((time.perf_counter() - started) * 1000)
            self.pdf_bytes.append(len(content))
            return content

        # Looked up by name at each call (run_billing → do_generate_invoice → next_number and
        # the import of .pdf's render_invoice_pdf).
        self._restore = [
            (invoices, "do_generate_invoice", generate),
            (invoices, "next_number", next_number),
            (pdf, "render_invoice_pdf", render),
        ]
        invoices.do_generate_invoice = timed_generate  # type: ignore[assignment]
        invoices.next_number = timed_next_number  # type: ignore[assignment]
        pdf.render_invoice_pdf = timed_render  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        for module, name, original in self._restore:
            setattr(module, name, original)

    def count(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        self.queries += 1
        return execute(sql, params, many, context)


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024 / MB
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset the process's peak resident set (Linux ≥ 4.0), to measure the generation alone."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _proc_status_mb("VmHWM") is not None


# ---------------------------------------------------------------------------------------------
# Measuring


def _figures(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"p50": 0.0, "p95": 0.0, "max": 0.0}
    return {
        "p50": round(percentile(ordered, 50), 1),
        "p95": round(percentile(ordered, 95), 1),
        "max": round(ordered[-1], 1),
    }


def generate(seeded: Seeded, options: Options, progress: Progress) -> dict[str, Any]:
    """Make the invoices through the batch path, round after round; return the figures."""
    from apps.billing.services.invoices import run_billing

    profile = BillingProfile.objects.get(organization=seeded.organization)
    catalogue = Catalogue(profile.canton)
    rng = random.Random(options.seed + 1)  # noqa: S311 - synthetic data, not security
    remaining = options.invoices
    seconds = 0.0
    charges = 0
    rss_before = _proc_status_mb("VmRSS")
    peak_reset = _reset_peak()
    with Probes() as probes:
        while remaining:
            group = seeded.patients[: min(len(seeded.patients), remaining)]
            started = time.perf_counter()
            charges += seed_charges(seeded, group, catalogue, rng)
            seeded.seconds["charges"] = round(
                seeded.seconds.get("charges", 0) + time.perf_counter() - started, 2
            )
            run = BillingRun.objects.create(
                organization=seeded.organization, started_by=seeded.billing, total=len(group)
            )
            progress(f"generating {len(group)} invoices ({remaining} to go)")
            started = time.perf_counter()
            with connection.execute_wrapper(probes.count):
                run = run_billing(run.pk)
            seconds += time.perf_counter() - started
            if run.failed or run.done != len(group):
                raise BenchError(f"the run made {run.done} of {len(group)}: {run.errors[:3]}")
            remaining -= len(group)
    if peak_reset:
        peak = _proc_status_mb("VmHWM") or 0.0
        measured = "VmHWM: peak resident set of the generation (reset before it)"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        measured = "ru_maxrss: peak resident set of the whole process, seeding included"
    invoices = options.invoices
    seeded.counts["charges"] = charges
    return {
        "invoices": invoices,
        "seconds": round(seconds, 2),
        "invoices_per_second": round(invoices / seconds, 1) if seconds else None,
        "invoice_ms": {**_figures(probes.invoice_ms), "first": round(probes.invoice_ms[0], 1)},
        "pdf_ms": _figures(probes.pdf_ms),
        # How long each invoice holds the numbering lock: the part that cannot run in parallel.
        "number_lock_ms": _figures(probes.lock_ms),
        "number_lock_share": round(sum(probes.lock_ms) / sum(probes.invoice_ms), 2),
        "pdf_bytes_avg": round(sum(probes.pdf_bytes) / len(probes.pdf_bytes)),
        "pdf_bytes_max": max(probes.pdf_bytes),
        "queries_per_invoice": round(probes.queries / invoices, 1),
        "memory": {
            "rss_before_mb": round(rss_before, 1) if rss_before is not None else None,
            "peak_rss_mb": round(peak, 1),
            "measured": measured,
        },
    }


def check(seeded: Seeded) -> dict[str, Any]:
    """What the run made is right: sealed PDFs that open, gapless numbers, unique references."""
    from apps.billing.services.invoices import open_invoice_pdf

    invoices = Invoice.objects.filter(organization=seeded.organization)
    count = invoices.count()
    sequences = list(invoices.order_by("year", "sequence").values_list("year", "sequence"))
    gapless = all(
        (year, seq) == (sequences[0][0], sequences[0][1] + i)
        for i, (year, seq) in enumerate(sequences)
    )
    sample = invoices.order_by("sequence")[:: max(1, count // 10)]
    opened = sum(1 for invoice in sample if open_invoice_pdf(invoice)[:5] == b"%PDF-")
    lines = InvoiceLine.objects.filter(invoice__in=invoices).count()
    return {
        "invoices": count,
        "with_pdf": invoices.exclude(pdf_name="").count(),
        "pdfs_opened": f"{opened}/{len(sample)}",
        "gapless": gapless,
        "unique_references": invoices.values("reference").distinct().count() == count,
        "lines_per_invoice": round(lines / count, 2) if count else 0,
        "recipients": dict(
            invoices.values_list("recipient").annotate(n=Count("pk")).values_list("recipient", "n")
        ),
    }


def run(options: Options, progress: Progress) -> dict[str, Any]:
    check_database(options)
    with bench_run(keep=options.keep, clean_up=lambda: clean_up(progress)) as result:
        seeded = seed_people(options, progress)
        result.update(generate(seeded, options, progress))
        result["seeded"] = {**seeded.counts, "build_seconds": seeded.seconds}
        result["checks"] = check(seeded)
    return result


class Command(BaseCommand):
    help = "Benchmark invoice generation (PDF with QR-bill included); prints one JSON object."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = Options()
        parser.add_argument("--invoices", type=positive_int, default=defaults.invoices)
        parser.add_argument(
            "--patients",
            type=positive_int,
            default=None,
            help="patients (default: one per invoice; fewer make the invoices in rounds)",
        )
        parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
        parser.add_argument("--keep", action="store_true", help="leave the bench rows in place")
        parser.add_argument(
            "--yes",
            action="store_true",
            help="run even though the database holds other patients (a throwaway copy)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bench_options = Options(
            invoices=options["invoices"],
            patients=options["patients"] or 0,
            seed=options["seed"],
            keep=options["keep"],
            yes=options["yes"],
        )
        try:
            result = run(bench_options, self._progress)
        except BenchError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result, indent=2))

    def _progress(self, message: str) -> None:
        self.stderr.write(f"bench_billing: {message}")
