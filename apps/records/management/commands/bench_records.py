"""Measure the patient record's pages on a large record; prints one JSON object.

Seeds, under an organisation of its own named "Bench", `--patients` patients; one of them carries
`--observations` observations, `--notes` signed notes and `--documents` documents (uploaded
through the real upload service), and the others `--background` observations each, so the
tables are not the chart's alone. A physician with a confirmed TOTP device is put on that
patient's care team. The pages are then requested in-process through the whole Django stack
(middleware, second-factor session, permission gate, audit, templates) with the test client.

Progress goes to stderr, the JSON result alone to stdout. Everything seeded is deleted at the
end unless `--keep`; the audit rows written meanwhile stay (the trail is append-only) and are
counted in the result. Run it on a database you can throw away.
"""

from __future__ import annotations

import io
import json
import os
import random
import secrets
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.models import Max
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import Organization, Role, User
from apps.audit.models import AuditEvent
from apps.records import bench
from apps.records.access import get_patient_for_user
from apps.records.models import (
    ClinicalNote,
    Concept,
    DocumentReference,
    Observation,
    Patient,
)
from apps.records.services.care_team import default_team, do_add_member
from apps.records.services.clinical import note_signature
from apps.records.services.documents import do_upload_document, storage_path

WARMUP = 3
ORGANIZATION_NAME = "Bench"
NOTE_WORDS = (
    "patient seen by video reports better sleep less pain on exertion blood pressure stable "
    "continue current treatment review in two weeks advised hydration walking daily"
).split()


@dataclass
class Seeded:
    """What this run created, so that it can all be removed again."""

    organization: Organization
    clinician: User | None = None
    patient: Patient | None = None
    concept_ids: list[int] = field(default_factory=list)


def _png(rng: random.Random) -> bytes:
    from PIL import Image

    colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Benchmark the patient record's pages on a large record; prints one JSON object."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=10_000)
        parser.add_argument("--observations", type=int, default=10_000)
        parser.add_argument("--notes", type=int, default=500)
        parser.add_argument("--documents", type=int, default=200)
        parser.add_argument(
            "--background",
            type=int,
            default=5,
            help="observations of each other patient (default 5)",
        )
        parser.add_argument("--requests", type=int, default=50, help="timed requests per page")
        parser.add_argument(
            "--keep", action="store_true", help="leave the seeded data in place (prints its ids)"
        )
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("patients", "requests"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1")
        for name in ("observations", "notes", "documents", "background"):
            if options[name] < 0:
                raise CommandError(f"--{name} cannot be negative")
        rng = random.Random(options["seed"])  # noqa: S311 - benchmark data, not secrets
        audit_mark = AuditEvent.objects.aggregate(top=Max("seq"))["top"] or 0
        seeded = Seeded(Organization.objects.create(name=ORGANIZATION_NAME))
        result: dict[str, Any] = {
            "database": self._database(),
            "cpus": os.cpu_count(),
            "debug": settings.DEBUG,
        }
        try:
            started = time.perf_counter()
            patient, clinician, device = self._seed(seeded, options, rng)
            result["seed_seconds"] = round(time.perf_counter() - started, 1)
            result["seeded"] = {
                key: options[key]
                for key in ("patients", "observations", "notes", "documents", "background")
            }
            result["pages"] = self._measure(patient, clinician, device, options["requests"])
        finally:
            if options["keep"]:
                result["kept"] = {
                    "organization": seeded.organization.pk,
                    "patient": seeded.patient.pk if seeded.patient else None,
                    "clinician": seeded.clinician.email if seeded.clinician else None,
                }
            else:
                self._progress("deleting the bench data")
                started = time.perf_counter()
                self._clean_up(seeded)
                result["cleanup_seconds"] = round(time.perf_counter() - started, 1)
        result["audit_rows_added"] = AuditEvent.objects.filter(seq__gt=audit_mark).count()
        self.stdout.write(json.dumps(result, indent=2))

    # -----------------------------------------------------------------------------------------
    # Seeding

    def _progress(self, message: str) -> None:
        self.stderr.write(f"bench_records: {message}")

    def _seed(
        self, seeded: Seeded, options: dict[str, Any], rng: random.Random
    ) -> tuple[Patient, User, TOTPDevice]:
        organization = seeded.organization
        clinician = User.objects.create_user(
            email=f"bench-{secrets.token_hex(6)}@bench.invalid",
            first_name="Bench",
            last_name="Physician",
            role=Role.PHYSICIAN,
            organization=organization,
        )
        seeded.clinician = clinician
        device = TOTPDevice.objects.create(user=clinician, name="bench", confirmed=True)

        patient_ids = bench.seed_patients(organization, options["patients"], self._progress)
        # The record under test sits in the middle of the table, not at one end.
        patient = Patient.objects.get(pk=patient_ids[len(patient_ids) // 2])
        seeded.patient = patient
        do_add_member(default_team(patient), clinician)

        concepts = bench.vital_concepts(seeded.concept_ids)
        now = timezone.now()
        self._seed_observations(patient, clinician, concepts, options["observations"], now, rng)
        others = [pk for pk in patient_ids if pk != patient.pk]
        self._seed_background(others, concepts, options["background"], now, rng)
        self._seed_notes(patient, clinician, options["notes"], now, rng)
        self._seed_documents(patient, clinician, options["documents"], now, rng)
        # Plan with fresh statistics, as a database that has lived with this data would.
        bench.analyze(Patient, Observation, ClinicalNote, DocumentReference)
        return patient, clinician, device

    def _seed_observations(
        self,
        patient: Patient,
        clinician: User,
        concepts: list[Concept],
        total: int,
        now: datetime,
        rng: random.Random,
    ) -> None:
        step = timedelta(days=bench.SPAN_DAYS) / max(total, 1)
        specs = (
            bench.ObservationSpec(
                patient.pk, concepts[i % len(concepts)], now - step * (total - i), clinician.pk
            )
            for i in range(total)
        )
        bench.seed_observations(specs, total, rng, self._progress, "observations of the chart")

    def _seed_background(
        self,
        patient_ids: list[int],
        concepts: list[Concept],
        per_patient: int,
        now: datetime,
        rng: random.Random,
    ) -> None:
        total = len(patient_ids) * per_patient
        if not total:
            return
        minutes = bench.SPAN_DAYS * 24 * 60
        specs = (
            bench.ObservationSpec(
                pk,
                concepts[(pk + n) % len(concepts)],
                now - timedelta(minutes=rng.randrange(minutes)),
                None,
            )
            for pk in patient_ids
            for n in range(per_patient)
        )
        bench.seed_observations(specs, total, rng, self._progress, "observations of the others")

    def _seed_notes(
        self, patient: Patient, clinician: User, total: int, now: datetime, rng: random.Random
    ) -> None:
        kinds = ClinicalNote.Kind.values
        step = timedelta(days=bench.SPAN_DAYS) / max(total, 1)
        notes = []
        for i in range(total):
            signed_at = now - step * (total - i) + timedelta(minutes=7)
            note = ClinicalNote(
                patient=patient,
                kind=kinds[i % len(kinds)],
                title=f"Follow-up {i + 1}",
                text=" ".join(rng.choice(NOTE_WORDS) for _ in range(120)),
                recorded_by=clinician,
                recorded_at=signed_at,
                signed_at=signed_at,
            )
            note.signature = note_signature(note)
            notes.append(note)
        for batch in bench.batches(notes, 500):
            ClinicalNote.objects.bulk_create(batch)
        if total:
            self._progress(f"{total} signed notes")

    def _seed_documents(
        self, patient: Patient, clinician: User, total: int, now: datetime, rng: random.Random
    ) -> None:
        # Through the real upload path (checks, re-encoding, encryption, audit), as a user would.
        access = get_patient_for_user(clinician, patient.pk, what="bench-upload", action=None)
        pdf = _pdf()
        step = timedelta(days=bench.SPAN_DAYS) / max(total, 1)
        documents = []
        for i in range(total):
            if i % 2:
                upload = SimpleUploadedFile(f"report-{i}.pdf", pdf, "application/pdf")
                category = DocumentReference.Category.REPORT
            else:
                upload = SimpleUploadedFile(f"photo-{i}.png", _png(rng), "image/png")
                category = DocumentReference.Category.PHOTO
            document = do_upload_document(
                access, upload, title=f"Document {i + 1}", category=category
            )
            document.recorded_at = now - step * (total - i) + timedelta(minutes=13)
            documents.append(document)
            if (i + 1) % 50 == 0 or i + 1 == total:
                self._progress(f"{i + 1}/{total} documents")
        DocumentReference.objects.bulk_update(documents, ["recorded_at"], batch_size=bench.BATCH)

    # -----------------------------------------------------------------------------------------
    # Measuring

    def _client(self, user: User, device: TOTPDevice) -> Client:
        """Signed in as `user`, second factor passed (as `tests.conftest.verified_client`)."""
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
        return client

    def _measure(
        self, patient: Patient, user: User, device: TOTPDevice, requests: int
    ) -> dict[str, Any]:
        pid = patient.pk
        timeline = reverse("records:timeline", args=[pid])
        pages = {
            "chart": reverse("records:chart", args=[pid]),
            "results": reverse("records:results", args=[pid]),
            "timeline": timeline,
            "timeline_observations_page_50": f"{timeline}?kind=observation&page=50",
        }
        added_host = "testserver" not in settings.ALLOWED_HOSTS and "*" not in (
            settings.ALLOWED_HOSTS
        )
        if added_host:
            settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
        client = self._client(user, device)
        try:
            figures = {}
            for name, url in pages.items():
                self._progress(f"measuring {name} ({requests} requests)")
                figures[name] = self._measure_page(client, url, requests)
        finally:
            client.logout()
            if added_host:
                settings.ALLOWED_HOSTS = [h for h in settings.ALLOWED_HOSTS if h != "testserver"]
        return figures

    def _get(self, client: Client, url: str) -> Any:
        response = client.get(url, secure=True)
        if response.status_code != 200:
            raise CommandError(f"GET {url} answered {response.status_code}")
        return response

    def _measure_page(self, client: Client, url: str, requests: int) -> dict[str, Any]:
        for _ in range(WARMUP):
            self._get(client, url)
        # The query count of one request; CaptureQueriesContext records even when DEBUG is off.
        with CaptureQueriesContext(connection) as captured:
            response = self._get(client, url)
        # Read them now: the next request clears the connection's query log.
        queries = list(captured.captured_queries)
        query_times = [float(q.get("time") or 0) for q in queries]
        timings = []
        for _ in range(requests):
            started = time.perf_counter()
            self._get(client, url)
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        return {
            "url": url,
            "requests": requests,
            "p50_ms": round(bench.percentile(timings, 50), 1),
            "p95_ms": round(bench.percentile(timings, 95), 1),
            "max_ms": round(timings[-1], 1),
            "queries": len(queries),
            "sql_ms": round(sum(query_times) * 1000, 1),
            "slowest_query_ms": round(max(query_times, default=0) * 1000, 1),
            "bytes": len(response.content),
        }

    # -----------------------------------------------------------------------------------------
    # Cleaning up

    def _clean_up(self, seeded: Seeded) -> None:
        organization = seeded.organization
        patients = Patient.objects.filter(organization=organization)
        names = DocumentReference.objects.filter(patient__in=patients).values_list(
            "storage_name", "thumbnail_name"
        )
        for storage_name, thumbnail_name in names:
            for name in (storage_name, thumbnail_name):
                if name:
                    storage_path(name).unlink(missing_ok=True)
        # Clinical rows cascade with their patient; the users go after (their rows PROTECT them).
        patients.delete()
        User.objects.filter(organization=organization).delete()
        Concept.objects.filter(pk__in=seeded.concept_ids).delete()
        organization.delete()

    def _database(self) -> str:
        if connection.vendor == "postgresql":
            version = connection.pg_version  # type: ignore[attr-defined]
            return f"PostgreSQL {version // 10000}.{version % 10000}"
        if connection.vendor == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        return connection.vendor
