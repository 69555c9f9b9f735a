"""`manage.py bench_messaging`: the secure-messaging pages on a large clinic; prints one JSON.

Seeds `--messages` messages in `--threads` conversations of `--patients` patients and
`--clinicians` clinicians (apps/messaging/bench.py says in what shape), then requests the pages
in-process through the whole Django stack (middleware, second-factor session, access check,
audit row, read marker, templates) with the test client, as `bench_records` does:

- the clinic's triage inbox (`messaging:inbox`), each tab, as the lead of the busiest practice;
- a clinician's page of the longest conversation (`messaging:clinic_thread`);
- a patient's conversations in the chart (`messaging:patient_threads`);
- the patient's list (`messaging:thread_list`) and thread page (`messaging:thread`), as the
  patient who writes the most.

For each page: p50 / p95 / max over `--requests` requests after 3 warm-up ones, and the SQL
queries of a request (`CaptureQueriesContext`), with their time and the slowest. The same page
is also asked at a small size (an inbox of four conversations, one per tab; a conversation of a
message or two; a patient with one conversation): `constant` says whether both took the same
number of queries; when not, the queries only one of them made are listed.

It refuses a database with patients that are not its own unless `--yes`. Progress goes to
stderr, the JSON alone to stdout. The bench rows are deleted at the end (and leftovers of an
interrupted run at the start) unless `--keep`; audit rows written meanwhile stay.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import Organization, User
from apps.core.benchmarks import bench_run, positive_int
from apps.messaging.access import threads_for_user
from apps.messaging.bench import (
    EMAIL_PREFIX,
    ORGANIZATION_NAME,
    BenchError,
    Options,
    PlannedThread,
    Progress,
    Seeded,
    seed,
)
from apps.messaging.models import STAFF_TOPICS, Attachment, Message, Participant, Thread
from apps.messaging.services import hours
from apps.messaging.views_clinic import tab_filter
from apps.records.bench import percentile
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member
from apps.records.services.documents import storage_path

WARMUP = 3
SLOW_MS = 300
INBOX_TABS = ("unassigned", "mine", "urgent", "open", "resolved")


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
    """Delete every bench row, also those of an interrupted run (audit rows stay)."""
    organizations = Organization.objects.filter(name=ORGANIZATION_NAME)
    if not organizations.exists():
        return
    progress("deleting the bench data")
    patients = Patient.objects.filter(organization__in=organizations)
    names: set[str] = set()
    for storage_name, thumbnail_name in Attachment.objects.filter(
        message__thread__patient__in=patients
    ).values_list("storage_name", "thumbnail_name"):
        names.update(filter(None, [storage_name, thumbnail_name]))
    users = User.objects.filter(email__startswith=EMAIL_PREFIX, email__endswith="@bench.invalid")
    with transaction.atomic():
        # The rows under the threads first, one statement each: the ORM's cascade would load
        # every message to delete them by primary key.
        threads = Thread.objects.filter(patient__in=patients).values("pk")
        messages = Message.objects.filter(thread__in=threads).values("pk")
        _delete(Attachment, "message_id", messages)
        _delete(Message.mentions.through, "message_id", messages)
        _delete(Participant, "thread_id", threads)
        _delete(Message, "thread_id", threads)
        patients.delete()
        TOTPDevice.objects.filter(user__in=users).delete()
        users.delete()
        organizations.delete()
    for name in names:
        storage_path(name).unlink(missing_ok=True)


def _delete(model: type[Any], column: str, keys: Any) -> None:
    """DELETE the rows of `model` whose `column` is in the (values) queryset `keys`."""
    subquery, params = keys.query.sql_with_params()
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({subquery})", params)  # noqa: S608


# ---------------------------------------------------------------------------------------------
# Whom to measure


@dataclass
class Cast:
    """A big and a small inbox, conversation and patient, to compare their query counts."""

    big_clinician: User
    small_clinician: User
    big_thread: int
    small_thread: int
    big_patient: Patient
    small_patient: Patient
    big_patient_thread: int
    small_patient_thread: int
    devices: dict[int, TOTPDevice] = field(default_factory=dict)


def pick_cast(seeded: Seeded) -> Cast:
    """The lead of practice 0 (on every care team of its patients) and patient 0 (who writes
    the most, and has the longest conversation) against small counterparts."""
    plans, ids = seeded.plans, seeded.thread_ids
    big = seeded.clinicians[0]
    visible = [i for i, plan in enumerate(plans) if big.pk in plan.team]
    # Small threads like the big one in what a page shows besides the messages: the read
    # receipt is looked up only under a message of the reader's side.
    side = _last_side(plans[0])
    small_thread = ids[
        min(visible, key=lambda i: (_last_side(plans[i]) != side, len(plans[i].messages), i))
    ]
    by_patient: dict[int, list[int]] = {}
    for i, plan in enumerate(plans):
        by_patient.setdefault(plan.patient, []).append(i)
    # Patients with a single conversation (with the patient) come first.
    quiet = sorted(
        (p for p in by_patient if p != 0),
        key=lambda p: (
            len(by_patient[p]),
            plans[by_patient[p][0]].topic in STAFF_TOPICS,
            _last_side(plans[by_patient[p][0]]) != side,
            p,
        ),
    )
    small = quiet[0]
    # The small inbox: a clinician on the care teams of four such patients only, one
    # conversation in each tab (unassigned, theirs, urgent, resolved), so that no tab of it is
    # empty (an empty page skips queries: that would not say the count is constant).
    small_clinician = seeded.clinicians[-1]
    for n, p in enumerate(quiet[:4]):
        # Through the service itself, which also checks that the bulk grants match its own.
        do_add_member(default_team(seeded.patients[p]), small_clinician)
        _set_tab(Thread.objects.get(pk=ids[by_patient[p][0]]), n, small_clinician)
    # The big inbox: the seeded conversations depend on today's date, so one of its tabs can
    # come out empty (which would skip that tab's queries); fill it from the fullest tab.
    fill_tabs(big, keep={ids[0], small_thread})
    cast = Cast(
        big_clinician=big,
        small_clinician=small_clinician,
        big_thread=ids[0],
        small_thread=small_thread,
        big_patient=seeded.patients[0],
        small_patient=seeded.patients[small],
        big_patient_thread=ids[0],
        small_patient_thread=ids[by_patient[small][0]],
    )
    for user in (big, small_clinician):
        cast.devices[user.pk] = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
    seeded.counts["big_inbox_threads"] = len(visible)
    seeded.counts["big_patient_threads"] = len(by_patient.get(0, []))
    seeded.counts["small_thread_messages"] = len(plans[ids.index(small_thread)].messages)
    return cast


def fill_tabs(clinician: User, keep: set[int]) -> None:
    """Give each inbox tab of `clinician` at least one conversation, taken from the fullest
    tab (never one of `keep`, the measured conversations)."""
    visible = threads_for_user(clinician)
    for n, tab in enumerate(SET_TABS):
        if visible.filter(tab_filter(tab, clinician)).exists():
            continue
        counts = {other: visible.filter(tab_filter(other, clinician)).count() for other in SET_TABS}
        fullest = max(counts, key=lambda other: counts[other])
        if counts[fullest] < 2:
            raise BenchError(f"too few conversations to fill the inbox tab {tab!r}")
        spare = (
            visible.filter(tab_filter(fullest, clinician))
            .exclude(pk__in=keep)
            .order_by("pk")
            .first()
        )
        if spare is None:
            raise BenchError(f"no conversation to move into the inbox tab {tab!r}")
        _set_tab(spare, n, clinician)
    for tab in SET_TABS:
        # A conversation can count in two tabs (urgent and mine): check the outcome.
        if not visible.filter(tab_filter(tab, clinician)).exists():
            raise BenchError(f"the inbox tab {tab!r} is still empty")


def _last_side(plan: PlannedThread) -> bool:
    """Whether the last message written by someone came from the patient."""
    return next(m.by_patient for m in reversed(plan.messages) if m.author_id is not None)


# The tabs `_set_tab` puts a conversation in, by number.
SET_TABS = ("unassigned", "mine", "urgent", "resolved")


def _set_tab(thread: Thread, tab: int, clinician: User) -> None:
    """Put the thread in inbox tab `tab`: 0 unassigned, 1 the clinician's, 2 urgent, 3 resolved."""
    resolved = tab == 3
    awaiting = not resolved and thread.last_message_by_patient
    Thread.objects.filter(pk=thread.pk).update(
        state=Thread.State.RESOLVED if resolved else Thread.State.OPEN,
        resolved_at=thread.last_message_at if resolved else None,
        resolved_by=clinician if resolved else None,
        assignee=clinician if tab in (1, 3) else None,
        urgency=Thread.Urgency.URGENT if tab == 2 else Thread.Urgency.ROUTINE,
        response_due_at=hours.response_due(thread.last_message_at) if awaiting else None,
    )


# ---------------------------------------------------------------------------------------------
# Measuring


def _client(user: User, cast: Cast) -> Client:
    """Signed in as `user`; a staff session has passed the second factor."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    device = cast.devices.get(user.pk)
    if device is not None:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


def _get(client: Client, url: str) -> Any:
    response = client.get(url, secure=True)
    if response.status_code != 200:
        raise BenchError(f"GET {url} answered {response.status_code}")
    return response


def _queries(client: Client, url: str) -> tuple[list[dict[str, Any]], Any]:
    """The queries of a request (recorded even with DEBUG off), and its response.

    The fewer of two requests': a staff session is written back every 30 seconds (the idle
    timeout's mark), which adds three queries to whichever request falls on it.
    """
    runs = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as captured:
            response = _get(client, url)
        # Read them now: the next request clears the connection's query log.
        runs.append((list(captured.captured_queries), response))
    return min(runs, key=lambda run: len(run[0]))


def measure_page(
    client: Client, url: str, requests: int, small: tuple[Client, str]
) -> dict[str, Any]:
    for _ in range(WARMUP):
        _get(client, url)
    queries, response = _queries(client, url)
    query_times = [float(q.get("time") or 0) for q in queries]
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        _get(client, url)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    small_client, small_url = small
    for _ in range(WARMUP):
        _get(small_client, small_url)
    small_queries, _response = _queries(small_client, small_url)
    figures = {
        "url": url,
        "requests": requests,
        "p50_ms": round(percentile(timings, 50), 1),
        "p95_ms": round(percentile(timings, 95), 1),
        "max_ms": round(timings[-1], 1),
        "queries": len(queries),
        "queries_small": len(small_queries),
        "constant": len(queries) == len(small_queries),
        "sql_ms": round(sum(query_times) * 1000, 1),
        "slowest_query_ms": round(max(query_times, default=0) * 1000, 1),
        "slowest_query": max(queries, key=lambda q: float(q.get("time") or 0))["sql"][:300]
        if queries
        else "",
        "bytes": len(response.content),
    }
    if len(queries) != len(small_queries):
        figures["queries_only_big"] = _difference(queries, small_queries)
        figures["queries_only_small"] = _difference(small_queries, queries)
    return figures


def _shape(sql: str) -> str:
    """A query without its literal values, to compare two requests' queries."""
    return re.sub(r"'[^']*'|\b\d+\b", "?", sql)[:240]


def _difference(queries: list[dict[str, Any]], others: list[dict[str, Any]]) -> list[str]:
    """The queries of one request that the other did not make (by shape)."""
    left = Counter(_shape(q["sql"]) for q in queries)
    left.subtract(Counter(_shape(q["sql"]) for q in others))
    return [shape for shape, extra in left.items() for _ in range(max(extra, 0))]


def measure(cast: Cast, options: Options, progress: Progress) -> dict[str, Any]:
    big_patient, small_patient = cast.big_patient, cast.small_patient
    if big_patient.user is None or small_patient.user is None:
        raise BenchError("the measured patients have no portal account")
    added_host = "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS
    if added_host:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    clients = {
        "big": _client(cast.big_clinician, cast),
        "small": _client(cast.small_clinician, cast),
        "big_patient": _client(big_patient.user, cast),
        "small_patient": _client(small_patient.user, cast),
    }
    inbox = reverse("messaging:inbox")
    pages: list[tuple[str, str, str, str, str]] = [
        (f"inbox_{tab}", "big", f"{inbox}?tab={tab}", "small", f"{inbox}?tab={tab}")
        for tab in INBOX_TABS
    ]
    pages += [
        (
            "clinic_thread",
            "big",
            reverse("messaging:clinic_thread", args=[cast.big_thread]),
            "big",
            reverse("messaging:clinic_thread", args=[cast.small_thread]),
        ),
        (
            "patient_threads",
            "big",
            reverse("messaging:patient_threads", args=[big_patient.pk]),
            "small",
            reverse("messaging:patient_threads", args=[small_patient.pk]),
        ),
        (
            "thread_list",
            "big_patient",
            reverse("messaging:thread_list"),
            "small_patient",
            reverse("messaging:thread_list"),
        ),
        (
            "thread",
            "big_patient",
            reverse("messaging:thread", args=[cast.big_patient_thread]),
            "small_patient",
            reverse("messaging:thread", args=[cast.small_patient_thread]),
        ),
    ]
    figures = {}
    try:
        for name, who, url, small_who, small_url in pages:
            progress(f"measuring {name} ({options.requests} requests)")
            figures[name] = measure_page(
                clients[who], url, options.requests, (clients[small_who], small_url)
            )
    finally:
        for client in clients.values():
            client.logout()
        if added_host:
            settings.ALLOWED_HOSTS = [h for h in settings.ALLOWED_HOSTS if h != "testserver"]
    return figures


def run(options: Options, progress: Progress) -> dict[str, Any]:
    check_database(options)
    with bench_run(keep=options.keep, clean_up=lambda: clean_up(progress)) as result:
        seeded = seed(options, progress)
        cast = pick_cast(seeded)
        result["seeded"] = {**seeded.counts, "build_seconds": seeded.seconds}
        pages = measure(cast, options, progress)
        result["pages"] = pages
        result["constant"] = all(page["constant"] for page in pages.values())
        result["slow_pages"] = [name for name, page in pages.items() if page["p95_ms"] > SLOW_MS]
    return result


class Command(BaseCommand):
    help = "Benchmark the secure-messaging pages on a large clinic; prints one JSON object."

    def add_arguments(self, parser: CommandParser) -> None:
        defaults = Options()
        parser.add_argument("--messages", type=positive_int, default=defaults.messages)
        parser.add_argument(
            "--threads",
            type=positive_int,
            default=None,
            help="conversations (default: one per ten messages)",
        )
        parser.add_argument("--patients", type=positive_int, default=defaults.patients)
        parser.add_argument(
            "--clinicians",
            type=positive_int,
            default=defaults.clinicians,
            help="clinicians, in practices of five (at least 3)",
        )
        parser.add_argument(
            "--requests",
            type=positive_int,
            default=defaults.requests,
            help="timed requests per page",
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
            messages=options["messages"],
            threads=options["threads"] or 0,
            patients=options["patients"],
            clinicians=options["clinicians"],
            requests=options["requests"],
            seed=options["seed"],
            keep=options["keep"],
            yes=options["yes"],
        )
        if bench_options.thread_count > bench_options.messages:
            raise CommandError("--threads cannot exceed --messages (a conversation has one)")
        if bench_options.clinicians < 3 or bench_options.patients < 2:
            raise CommandError("at least 3 clinicians and 2 patients")
        try:
            result = run(bench_options, self._progress)
        except BenchError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(result, indent=2))

    def _progress(self, message: str) -> None:
        self.stderr.write(f"bench_messaging: {message}")
