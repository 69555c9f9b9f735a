"""`manage.py bench_care`: care coordination on a clinic of `--patients` patients; prints one JSON.

Seeds the population of apps/care/bench.py, then measures, in-process through the whole Django
stack with the test client (middleware, second-factor session, access check, audit row,
templates), as the other `bench_*` commands do:

- "My tasks" (`care:my_tasks`) for the nurse with `--nurse-tasks` open tasks;
- the care plan page (`care:plan`) of the biggest plan, for its coordinator;
- the FHIR Task search of that nurse's open tasks (`/fhir/Task?owner=…&status=…`, a bearer
  token with `user/*.rs`).

For each: p50 / p95 / max over `--requests` requests after 3 warm-up ones, and the SQL queries of
a request, compared with the same page at a small size (a nurse with two tasks, the smallest
plan; for the FHIR search, a full page of each, as a page that is not full skips the COUNT):
`constant` says whether both took the same number. Then the scheduled work over the whole
population: `evaluate_all` (decision support: patients evaluated per second, proposals made) and
`run_reminders`, twice: its first run (plans the coming hours) and a run at the time of the
last dose planned (plans on, reminds the doses due, marks the missed): doses planned and reminded
per second. And the process's peak RSS.

It refuses a database with patients that are not its own unless `--yes`. Progress goes to
stderr, the JSON alone to stdout. The bench rows are deleted at the end (and leftovers of an
interrupted run at the start) unless `--keep`; audit rows and the reference data stay.
"""

from __future__ import annotations

import datetime as dt
import json
import resource
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models import Max
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import Organization, User
from apps.accounts.services import do_issue_token
from apps.care.bench import (
    EMAIL_PREFIX,
    ORGANIZATION_NAME,
    BenchError,
    Options,
    Progress,
    Seeded,
    bench_patients,
    plan_weight,
    seed,
)
from apps.care.models import CarePlan, DoseReminder, Proposal, Task
from apps.care.services.reminders import run_reminders
from apps.care.services.support.engine import evaluate_all, patients_to_evaluate
from apps.care.services.support.rules import active_rules
from apps.core.benchmarks import bench_run, positive_int
from apps.records.bench import percentile
from apps.records.fhir import SYS_USER
from apps.records.models import Observation, Patient

WARMUP = 3
SLOW_MS = 300


# ---------------------------------------------------------------------------------------------
# Safety and cleaning up


def check_database(options: Options) -> None:
    """Refuse a database holding real records unless told it is a throwaway one."""
    if options.yes:
        return
    others = Patient.objects.exclude(organization__name=ORGANIZATION_NAME).count()
    if others:
        raise BenchError(
            f"this database holds {others} patients that are not the benchmark's: run it on a "
            "database of its own (createdb, migrate) or pass --yes if this one is a throwaway"
        )


def _delete(model: type[Any], column: str, keys: Any) -> None:
    """DELETE the rows of `model` whose `column` is in the (values) queryset `keys`."""
    subquery, params = keys.query.sql_with_params()
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({subquery})", params)  # noqa: S608


def clean_up(progress: Progress) -> None:
    """Delete every bench row, also those of an interrupted run (audit rows stay)."""
    organizations = Organization.objects.filter(name=ORGANIZATION_NAME)
    if not organizations.exists():
        return
    progress("deleting the bench data")
    patients = bench_patients()
    users = User.objects.filter(email__startswith=EMAIL_PREFIX, email__endswith="@bench.invalid")
    with transaction.atomic():
        keys = patients.values("pk")
        # The many rows first, one statement each: the ORM's cascade would load them all.
        _delete(DoseReminder, "patient_id", keys)
        _delete(Observation, "patient_id", keys)
        Proposal.objects.filter(patient__in=keys).delete()
        Task.objects.filter(patient__in=keys).delete()
        patients.delete()
        TOTPDevice.objects.filter(user__in=users).delete()
        users.delete()
        organizations.delete()


# ---------------------------------------------------------------------------------------------
# Measuring pages


def _client(user: User) -> Client:
    """Signed in as `user`, the session past the second factor."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def _fhir_client(user: User) -> Client:
    secret, _token = do_issue_token(user, name="bench", scopes=["user/*.rs"])
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_ACCEPT="application/fhir+json")


def _get(client: Client, url: str) -> Any:
    response = client.get(url, secure=True)
    if response.status_code != 200:
        raise BenchError(f"GET {url} answered {response.status_code}")
    return response


def _queries(client: Client, url: str) -> int:
    """The fewer queries of two requests (a session is written back now and then)."""
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as captured:
            _get(client, url)
        counts.append(len(captured))
    return min(counts)


def measure_page(
    client: Client, url: str, requests: int, small: tuple[Client, str]
) -> dict[str, Any]:
    for _ in range(WARMUP):
        _get(client, url)
    queries = _queries(client, url)
    timings = []
    size = 0
    for _ in range(requests):
        started = time.perf_counter()
        size = len(_get(client, url).content)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    small_client, small_url = small
    _get(small_client, small_url)
    small_queries = _queries(small_client, small_url)
    return {
        "url": url,
        "requests": requests,
        "p50_ms": round(percentile(timings, 50), 1),
        "p95_ms": round(percentile(timings, 95), 1),
        "max_ms": round(timings[-1], 1),
        "queries": queries,
        "queries_small": small_queries,
        "constant": queries == small_queries,
        "bytes": size,
    }


def _task_search(nurse: User, count: int = 50) -> str:
    return f"/fhir/Task?owner={SYS_USER}|{nurse.pk}&status=requested,in-progress&_count={count}"


def _searched(nurse: User) -> int:
    return Task.objects.filter(assignee=nurse, status__in=("requested", "in-progress")).count()


def measure_pages(seeded: Seeded, options: Options, progress: Progress) -> dict[str, Any]:
    added_host = "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS
    if added_host:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    plans = sorted(seeded.plans, key=plan_weight)
    small_plan, big_plan = plans[0], plans[-1]
    big, small = seeded.big_nurse, seeded.small_nurse
    coordinator, small_coordinator = big_plan.coordinator, small_plan.coordinator
    if coordinator is None or small_coordinator is None:
        raise BenchError("the measured plans have no coordinator")
    clients = {user.pk: _client(user) for user in {big, small, coordinator, small_coordinator}}
    pages = [
        (
            "my_tasks",
            clients[big.pk],
            reverse("care:my_tasks"),
            clients[small.pk],
            reverse("care:my_tasks"),
        ),
        (
            "plan",
            clients[coordinator.pk],
            reverse("care:plan", args=[big_plan.pk]),
            clients[small_coordinator.pk],
            reverse("care:plan", args=[small_plan.pk]),
        ),
        (
            "fhir_task_search",
            _fhir_client(big),
            _task_search(big, count=min(50, _searched(big))),
            _fhir_client(small),
            # A full page too (of her two tasks): a page that is not full skips the COUNT.
            _task_search(small, count=2),
        ),
    ]
    figures = {}
    try:
        for name, client, url, small_client, small_url in pages:
            progress(f"measuring {name} ({options.requests} requests)")
            figures[name] = measure_page(client, url, options.requests, (small_client, small_url))
    finally:
        for client in clients.values():
            client.logout()
        if added_host:
            settings.ALLOWED_HOSTS = [h for h in settings.ALLOWED_HOSTS if h != "testserver"]
    figures["plan"]["plan_rows"] = {"big": plan_weight(big_plan), "small": plan_weight(small_plan)}
    return figures


# ---------------------------------------------------------------------------------------------
# Measuring the scheduled work


def measure_decision_support(progress: Progress) -> dict[str, Any]:
    progress("measuring evaluate_all")
    now = timezone.now()
    patients = len(patients_to_evaluate(now, list(active_rules())))
    started = time.perf_counter()
    made = evaluate_all(now=now)
    seconds = time.perf_counter() - started
    return {
        "patients": patients,
        "proposals_made": made,
        "seconds": round(seconds, 2),
        "patients_per_second": round(patients / seconds, 1) if seconds else None,
    }


def _reminder_run(now: dt.datetime) -> dict[str, Any]:
    patients = bench_patients().values("pk")
    doses = DoseReminder.objects.filter(patient__in=patients)
    before = doses.count()
    started = time.perf_counter()
    changed = run_reminders(now=now)
    seconds = time.perf_counter() - started
    planned = doses.count() - before
    sent = doses.filter(sent_at=now).count()
    return {
        "rows_changed": changed,
        "doses_planned": planned,
        "doses_sent": sent,
        "seconds": round(seconds, 2),
        "doses_per_second": round((planned + sent) / seconds, 1) if seconds else None,
    }


def measure_reminders(progress: Progress) -> dict[str, Any]:
    """The beat job's first run (plans the coming hours of every line), then a run at the time
    of the last dose it planned (plans the hours after, reminds every dose due in the answer
    window before, marks the older unanswered ones missed)."""
    progress("measuring run_reminders")
    now = timezone.now()
    first = _reminder_run(now)
    planned = DoseReminder.objects.filter(patient__in=bench_patients().values("pk"))
    last = planned.aggregate(last=Max("send_at"))["last"]
    later = _reminder_run(last) if last is not None else None
    return {"first": first, "later": later, "later_at_hours": _hours(now, last)}


def _hours(start: dt.datetime, end: dt.datetime | None) -> float | None:
    return round((end - start).total_seconds() / 3600, 1) if end is not None else None


def peak_rss_mb() -> float:
    # Linux reports ru_maxrss in kilobytes.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run(options: Options, progress: Progress) -> dict[str, Any]:
    check_database(options)
    with bench_run(keep=options.keep, clean_up=lambda: clean_up(progress)) as result:
        seeded = seed(options, progress)
        result["seeded"] = {**seeded.counts, "build_seconds": seeded.seconds}
        pages = measure_pages(seeded, options, progress)
        result["pages"] = pages
        result["constant"] = all(page["constant"] for page in pages.values())
        result["slow_pages"] = [name for name, page in pages.items() if page["p95_ms"] > SLOW_MS]
        result["evaluate_all"] = measure_decision_support(progress)
        result["run_reminders"] = measure_reminders(progress)
        result["plans_after"] = CarePlan.objects.filter(patient__in=bench_patients()).count()
        result["peak_rss_mb"] = peak_rss_mb()
    return result


class Command(BaseCommand):
    help = "Benchmark care coordination on a clinic; prints one JSON object."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = Options()
        parser.add_argument("--patients", type=positive_int, default=defaults.patients)
        parser.add_argument(
            "--clinicians",
            type=positive_int,
            default=defaults.clinicians,
            help="clinicians, in practices of five (at least 5)",
        )
        parser.add_argument(
            "--nurse-tasks",
            type=positive_int,
            default=defaults.nurse_tasks,
            help="open tasks of the measured nurse",
        )
        parser.add_argument(
            "--days", type=positive_int, default=defaults.days, help="days of device readings"
        )
        parser.add_argument(
            "--requests", type=positive_int, default=defaults.requests, help="timed requests"
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
            patients=options["patients"],
            clinicians=options["clinicians"],
            nurse_tasks=options["nurse_tasks"],
            days=options["days"],
            requests=options["requests"],
            seed=options["seed"],
            keep=options["keep"],
            yes=options["yes"],
        )
        if bench_options.clinicians < 5:
            raise CommandError("at least 5 clinicians (one practice of five)")
        if bench_options.patients < bench_options.clinicians // 5:
            raise CommandError("at least one patient per practice")
        try:
            result = run(bench_options, self._progress)
        except BenchError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result, indent=2))

    def _progress(self, message: str) -> None:
        self.stderr.write(f"bench_care: {message}")
