"""Measure the FHIR API on a large population; prints one JSON object.

Seeds, under an organisation of its own ("Bench FHIR"), `--patients` patients and
`--observations` vital signs spread evenly over them and over the last year. A physician with a
Practitioner resource joins every patient's care team (through the care-team service, which
grants the access) and gets a bearer token with `user/*.rs`. Then, in-process through the whole
Django stack (middleware, token check, scope filter, mapping, audit row) with the test client:

- read: `GET /fhir/Observation/<id>` of random observations;
- search: `GET /fhir/Observation?patient=<id>&code=http://loinc.org|<code>&date=ge..&date=le..
  &_count=50` for a random patient, code and 180-day window;
- sql: the same search as raw SQL on the same indexes (page of 50 plus count, no scope check);
- export: a system-level `$export` of every Observation, kicked off with `start_export` and run
  by its Celery task in this process (eager mode), so no worker is needed.

Progress goes to stderr, the JSON alone to stdout. The population stays for the next run
(`--reuse`); `--drop` deletes it. The audit rows written stay (the trail is append-only). Run it
on a database you can throw away.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.accounts.services import do_issue_token
from apps.interop.export import run_export, start_export, storage_path
from apps.interop.fhir_api.auth import SYSTEM, Caller, parse_scopes
from apps.interop.fhir_api.search import date_range
from apps.interop.models import ExportJob
from apps.records import bench
from apps.records.models import CareTeam, CodeSystem, Concept, Observation, Patient, Practitioner
from apps.records.services.care_team import default_team, do_add_member

ORGANIZATION_NAME = "Bench FHIR"
WARMUP = 10
WINDOW_DAYS = 180


class Command(BaseCommand):
    help = "Benchmark the FHIR API (read, search, raw SQL, $export); prints one JSON object."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=1_000)
        parser.add_argument("--observations", type=int, default=100_000)
        parser.add_argument("--repeat", type=int, default=200, help="timed requests per measure")
        parser.add_argument(
            "--reuse", action="store_true", help="measure the population a previous run left"
        )
        parser.add_argument("--drop", action="store_true", help="delete the population and stop")
        parser.add_argument("--no-export", action="store_true", help="skip the $export measure")
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("patients", "repeat"):
            if options[name] < 1:
                raise CommandError(f"--{name} must be at least 1")
        if options["observations"] < 0:
            raise CommandError("--observations cannot be negative")
        if options["drop"]:
            self._drop()
            return
        rng = random.Random(options["seed"])  # noqa: S311 - benchmark data, not secrets
        result: dict[str, Any] = {
            "database": f"PostgreSQL {connection.pg_version // 10000}"  # type: ignore[attr-defined]
            if connection.vendor == "postgresql"
            else connection.vendor,
            "cpus": os.cpu_count(),
            "debug": settings.DEBUG,
        }
        organization = Organization.objects.filter(name=ORGANIZATION_NAME).first()
        if options["reuse"] and organization is not None:
            result["seeding"] = "reused"
        else:
            if options["reuse"]:
                self._progress("no population to reuse: seeding one")
            self._drop()
            result["seeding"] = self._seed(options, rng)
            organization = Organization.objects.get(name=ORGANIZATION_NAME)
        clinician = User.objects.get(organization=organization, role=Role.PHYSICIAN)
        result["population"] = {
            "patients": Patient.objects.filter(organization=organization).count(),
            "observations": Observation.objects.filter(patient__organization=organization).count(),
        }
        secret, _token = do_issue_token(clinician, name="bench_fhir", scopes=["user/*.rs"])
        host = next((h for h in settings.ALLOWED_HOSTS if h[:1] not in ("*", ".")), "localhost")
        client = Client(
            HTTP_AUTHORIZATION=f"Bearer {secret}",
            HTTP_ACCEPT="application/fhir+json",
            HTTP_HOST=host,
        )
        result.update(self._measure(client, organization, options["repeat"], rng))
        if not options["no_export"]:
            result.update(self._export())
        self.stdout.write(json.dumps(result, indent=2))

    def _progress(self, message: str) -> None:
        self.stderr.write(f"bench_fhir: {message}")

    # -----------------------------------------------------------------------------------------
    # Population

    def _seed(self, options: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        timings: dict[str, Any] = {}
        started = time.perf_counter()
        organization = Organization.objects.create(name=ORGANIZATION_NAME)
        clinician = User.objects.create_user(
            email=f"bench-fhir-{rng.getrandbits(48):012x}@bench.invalid",
            first_name="Bench",
            last_name="Physician",
            role=Role.PHYSICIAN,
            organization=organization,
        )
        Practitioner.objects.create(user=clinician, registration_number="7601000000000")
        patient_ids = bench.seed_patients(organization, options["patients"], self._progress)
        timings["patients_seconds"] = _since(started)

        started = time.perf_counter()
        for n, patient in enumerate(Patient.objects.filter(pk__in=patient_ids), 1):
            do_add_member(default_team(patient), clinician)
            if n % 500 == 0:
                self._progress(f"{n}/{len(patient_ids)} care teams")
        timings["care_teams_seconds"] = _since(started)

        started = time.perf_counter()
        total = options["observations"]
        concepts = bench.vital_concepts([])
        specs = bench.spread(patient_ids, concepts, total, timezone.now(), clinician.pk, rng)
        bench.seed_observations(specs, total, rng, self._progress)
        timings["observations_seconds"] = _since(started)
        timings["observations_per_s"] = round(total / max(timings["observations_seconds"], 0.001))

        started = time.perf_counter()
        self._progress("vacuum analyze")
        bench.analyze(Patient, Observation, CareTeam)
        timings["analyze_seconds"] = _since(started)
        return timings

    def _drop(self) -> None:
        """Delete a previous population (observations with one statement: no ORM cascade)."""
        organization = Organization.objects.filter(name=ORGANIZATION_NAME).first()
        if organization is None:
            return
        self._progress("deleting the previous population")
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM records_observation WHERE patient_id IN "
                "(SELECT id FROM records_patient WHERE organization_id = %s)",
                [organization.pk],
            )
        Patient.objects.filter(organization=organization).delete()
        User.objects.filter(organization=organization).delete()
        organization.delete()

    # -----------------------------------------------------------------------------------------
    # Measures

    def _measure(
        self, client: Client, organization: Organization, repeat: int, rng: random.Random
    ) -> dict[str, Any]:
        patients = list(
            Patient.objects.filter(organization=organization).values_list("pk", "fhir_id")
        )
        codes = list(
            Concept.objects.filter(category="vital-signs", system=CodeSystem.LOINC)
            .order_by("pk")
            .values_list("code", flat=True)[:12]
        )
        observations = Observation.objects.filter(patient__organization=organization)
        bounds = observations.order_by("pk").values_list("pk", flat=True)
        low, high = bounds.first() or 0, bounds.last() or 0
        picked = rng.sample(range(low, high + 1), min(repeat + WARMUP, high - low + 1))
        found = observations.filter(pk__in=picked).values_list("fhir_id", flat=True)
        ids = [str(fhir_id) for fhir_id in found]
        if not ids:
            raise CommandError("The population has no observations to read.")
        self._progress(f"read: {repeat} requests")
        read = _timed(repeat, lambda n: _get(client, f"/fhir/Observation/{ids[n % len(ids)]}"))

        today = timezone.localdate()

        def search_args() -> tuple[str, str, str, str]:
            _pk, fhir_id = rng.choice(patients)
            end = today - timedelta(days=rng.randrange(365 - WINDOW_DAYS + 1))
            start = end - timedelta(days=WINDOW_DAYS)
            return str(fhir_id), rng.choice(codes), start.isoformat(), end.isoformat()

        matched: list[int] = []

        def search(_n: int) -> None:
            fhir_id, code, start, end = search_args()
            url = (
                f"/fhir/Observation?patient={fhir_id}&code={CodeSystem.LOINC}|{code}"
                f"&date=ge{start}&date=le{end}&_count=50"
            )
            matched.append(_get(client, url)["total"])

        self._progress(f"search: {repeat} requests")
        searched = _timed(repeat, search)

        def sql(_n: int) -> None:
            fhir_id, code, start, end = search_args()
            _raw_search(fhir_id, code, date_range(start)[0], date_range(end)[1])

        self._progress(f"raw SQL: {repeat} queries")
        raw = _timed(repeat, sql)
        return {
            "read_p50_ms": read[0],
            "read_p95_ms": read[1],
            "search_p50_ms": searched[0],
            "search_p95_ms": searched[1],
            "search_mean_matches": round(sum(matched) / len(matched), 1),
            "sql_p50_ms": raw[0],
            "sql_p95_ms": raw[1],
            "search_to_sql_ratio": round(searched[0] / max(raw[0], 0.001), 2),
            "search_to_sql_ratio_p95": round(searched[1] / max(raw[1], 0.001), 2),
            "repeat": repeat,
        }

    def _export(self) -> dict[str, Any]:
        from virtualhospital.celery import app

        caller = Caller(
            SYSTEM,
            None,
            tuple(parse_scopes("system/Observation.rs")),
            "bench_fhir",
            {"client_id": "bench_fhir"},
        )
        eager = app.conf.task_always_eager
        # The task runs here, at the kick-off's commit: the measure needs no worker.
        app.conf.task_always_eager = True
        self._progress("$export of every Observation")
        try:
            started = time.perf_counter()
            job = start_export(
                caller,
                level=ExportJob.Level.SYSTEM,
                types=["Observation"],
                request_url="http://testserver/fhir/$export?_type=Observation",
            )
            run_export(job.pk)  # a no-op when the task already ran it, as it does here
            seconds = time.perf_counter() - started
        finally:
            app.conf.task_always_eager = eager
        job.refresh_from_db()
        if job.status != ExportJob.Status.COMPLETED:
            raise CommandError(f"The export ended {job.status}: {job.error}")
        files = list(job.files.all())
        size = sum(f.size for f in files)
        for export_file in files:
            storage_path(export_file.storage_name).unlink(missing_ok=True)
        job.delete()
        return {
            "export_resources": job.resources_done,
            "export_seconds": round(seconds, 2),
            "export_resources_per_s": round(job.resources_done / max(seconds, 0.001)),
            "export_files": len(files),
            "export_ndjson_mb": round(size / 1e6, 1),
        }


def _since(started: float) -> float:
    return round(time.perf_counter() - started, 1)


def _get(client: Client, url: str) -> dict[str, Any]:
    response = client.get(url, secure=True)
    if response.status_code != 200:
        answer = response.content[:300].decode(errors="replace")
        raise CommandError(f"GET {url} answered {response.status_code}: {answer}")
    body: dict[str, Any] = json.loads(response.content)
    return body


def _timed(repeat: int, action: Callable[[int], Any]) -> tuple[float, float]:
    """p50 and p95 in ms of `repeat` runs of `action`, after a few untimed ones."""
    for n in range(WARMUP):
        action(n)
    timings = []
    for n in range(repeat):
        started = time.perf_counter()
        action(WARMUP + n)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return round(bench.percentile(timings, 50), 2), round(bench.percentile(timings, 95), 2)


_RAW_WHERE = """
    FROM records_observation o
    JOIN records_patient p ON p.id = o.patient_id
    JOIN records_concept c ON c.id = o.code_id
    WHERE p.fhir_id = %s AND c.system = %s AND c.code = %s
      AND o.effective_at >= %s AND o.effective_at < %s
"""


def _raw_search(fhir_id: str, code: str, start: datetime, end: datetime) -> int:
    """The search without the API: the page's rows and the count, straight from the indexes."""
    params: list[Any] = [fhir_id, CodeSystem.LOINC, code, start, end]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT o.* {_RAW_WHERE} ORDER BY o.effective_at DESC, o.id DESC LIMIT 50",  # noqa: S608 - constant SQL
            params,
        )
        rows = cursor.fetchall()
        if len(rows) < 50:  # as the API: a page that is not full is the whole result
            return len(rows)
        cursor.execute(f"SELECT count(*) {_RAW_WHERE}", params)  # noqa: S608 - constant SQL
        return int(cursor.fetchone()[0])
