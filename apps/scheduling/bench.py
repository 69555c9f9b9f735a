"""The scheduling benchmark (`manage.py bench_scheduling`).

Seeds an organisation ("Bench scheduling") of `practitioners` clinicians with `weeks` of weekly
availability (mornings in person, afternoons in person or by video), a week of holiday for one
in ten and a half-day absence for the others, and books `booked_share` of their grid slots with
`bulk_create` of Appointment and Participant rows (no clinician and no patient twice at once, so
the exclusion constraints hold). Then it measures, on the real database:

- `free_slots` of a type over 14 days: every offering schedule, one specialty, one practitioner
  (p50 / p95 / max over `runs` runs, and the queries of one run);
- the team agenda's week page (`scheduling:team_agenda`) for `team_size` clinicians, through
  `django.test.Client` signed in as a 2FA-verified coordinator (p50 / p95 and its query count);
  `null` when the page is not installed.

Everything seeded is found by its organisation and its appointment type codes ("bench-…") and
deleted at the end unless kept; audit rows written meanwhile stay (the trail is append-only).
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import Organization, Role, User
from apps.records.bench import percentile
from apps.records.models import Patient

from .models import (
    Appointment,
    AppointmentType,
    AvailabilityException,
    AvailabilityRule,
    Location,
    Participant,
    Schedule,
)
from .services.slots import clinic_zone, free_slots, wall_clock

Progress = Callable[[str], None]
T = TypeVar("T")

ORGANIZATION_NAME = "Bench scheduling"
TYPE_PREFIX = "bench-"
BATCH = 2000
SEARCH_DAYS = 14
TARGET_MS = 100  # free-slot search p95 (issue 6)
SPECIALTIES = [
    ("419192003", "Médecine interne"),
    ("394579002", "Cardiologie"),
    ("394582007", "Dermatologie"),
    ("394591006", "Neurologie"),
    ("394537008", "Pédiatrie"),
    ("394587001", "Psychiatrie"),
]
ROLES = [Role.PHYSICIAN] * 12 + [Role.NURSE] * 5 + [Role.ALLIED] * 3  # 60 / 25 / 15 %
MORNING = (dt.time(8), dt.time(12))
AFTERNOON = (dt.time(13, 30), dt.time(17))


class BenchError(Exception):
    pass


@dataclass(frozen=True)
class Options:
    practitioners: int = 200
    weeks: int = 13
    booked_share: float = 0.4
    patients: int = 3000
    runs: int = 30
    agenda_runs: int = 20
    team_size: int = 10
    keep: bool = False
    seed: int = 6


@dataclass
class Seeded:
    organization: Organization
    coordinator: User
    device: TOTPDevice
    consult: AppointmentType
    video: AppointmentType
    clinicians: list[int] = field(default_factory=list)
    schedules: list[int] = field(default_factory=list)
    patients: list[int] = field(default_factory=list)
    appointments: int = 0
    slots: int = 0


def batches(items: list[T], size: int = BATCH) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------
# Seeding and cleaning up


def _users(organization: Organization, total: int, tag: str, rng: random.Random) -> list[User]:
    users = []
    for i in range(total):
        user = User(
            email=f"bench-sched-{tag}-{i}@bench.invalid",
            first_name=f"Bench{i}",
            last_name="Clinician",
            role=rng.choice(ROLES),
            organization=organization,
        )
        user.set_unusable_password()
        users.append(user)
    return User.objects.bulk_create(users, batch_size=BATCH)


def _rules(schedule: Schedule, location: Location, since: dt.date) -> list[AvailabilityRule]:
    rules = []
    for weekday in range(5):
        rules.append(
            AvailabilityRule(
                schedule=schedule,
                weekday=weekday,
                starts=MORNING[0],
                ends=MORNING[1],
                mode="in_person",
                location=location,
                valid_from=since,
            )
        )
        video = weekday in (1, 3)
        rules.append(
            AvailabilityRule(
                schedule=schedule,
                weekday=weekday,
                starts=AFTERNOON[0],
                ends=AFTERNOON[1],
                mode="video" if video else "in_person",
                location=None if video else location,
                valid_from=since,
            )
        )
    return rules


def _instant(day: dt.date, at: dt.time) -> dt.datetime:
    found = wall_clock(day, at, clinic_zone())
    assert found is not None  # noqa: S101 - the windows lie in the daytime, never in a DST gap
    return found


def _absences(
    schedules: list[Schedule], first: dt.date, days: int, rng: random.Random
) -> list[AvailabilityException]:
    absences = []
    for i, schedule in enumerate(schedules):
        start = first + dt.timedelta(days=rng.randrange(days - 7))
        if i % 10 == 0:  # a week of holiday
            starts, ends = (
                _instant(start, dt.time(0)),
                _instant(start + dt.timedelta(7), dt.time(0)),
            )
            kind = AvailabilityException.Kind.HOLIDAY
        else:  # an afternoon off
            starts, ends = _instant(start, AFTERNOON[0]), _instant(start, AFTERNOON[1])
            kind = AvailabilityException.Kind.ABSENCE
        absences.append(
            AvailabilityException(schedule=schedule, starts_at=starts, ends_at=ends, kind=kind)
        )
    return absences


def _grid(
    day: dt.date, window: tuple[dt.time, dt.time], minutes: int
) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    cursor = dt.datetime.combine(day, window[0])
    last = dt.datetime.combine(day, window[1])
    length = dt.timedelta(minutes=minutes)
    while cursor + length <= last:
        starts = _instant(day, cursor.time())
        yield starts, starts + length
        cursor += length


def _bookings(
    seeded: Seeded,
    schedules: list[Schedule],
    absences: dict[int, tuple[dt.datetime, dt.datetime]],
    first: dt.date,
    days: int,
    share: float,
    rng: random.Random,
) -> list[tuple[int, AppointmentType, dt.datetime, dt.datetime, int | None]]:
    """(clinician, type, start, end, location) of the booked grid slots, by start."""
    location = (
        Location.objects.filter(organization=seeded.organization)
        .values_list("pk", flat=True)
        .first()
    )
    found = []
    for schedule in schedules:
        off = absences.get(schedule.pk)
        for offset in range(days):
            day = first + dt.timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            video = day.weekday() in (1, 3)
            for window, kind in (
                (MORNING, seeded.consult),
                (AFTERNOON, seeded.video if video else seeded.consult),
            ):
                for starts, ends in _grid(day, window, kind.minutes):
                    seeded.slots += 1
                    if off and off[0] < ends and starts < off[1]:
                        continue
                    if rng.random() < share:
                        place = None if kind.mode == "video" else location
                        found.append((schedule.clinician_id, kind, starts, ends, place))
    found.sort(key=lambda b: (b[2], b[0]))
    return found


def seed(options: Options, progress: Progress) -> Seeded:
    """The organisation, its clinicians' agendas and booked appointments."""
    rng = random.Random(options.seed)  # noqa: S311 - reproducible test data, not secrets
    tag = secrets.token_hex(4)
    organization = Organization.objects.create(name=ORGANIZATION_NAME)
    location = Location.objects.create(organization=organization, name="Bench, salle 1")
    consult = AppointmentType.objects.create(
        code=f"{TYPE_PREFIX}{tag}-consult",
        name="Bench consultation",
        minutes=30,
        mode="in_person",
        professions=[Role.PHYSICIAN, Role.NURSE, Role.ALLIED],
    )
    video = AppointmentType.objects.create(
        code=f"{TYPE_PREFIX}{tag}-video",
        name="Bench téléconsultation",
        minutes=20,
        mode="video",
        professions=[Role.PHYSICIAN, Role.NURSE, Role.ALLIED],
    )
    coordinator = User.objects.create_user(
        email=f"bench-sched-{tag}-coordinator@bench.invalid",
        first_name="Bench",
        last_name="Coordinator",
        role=Role.COORDINATOR,
        organization=organization,
    )
    device = TOTPDevice.objects.create(user=coordinator, name="bench", confirmed=True)
    seeded = Seeded(organization, coordinator, device, consult, video)

    progress(f"seeding {options.practitioners} practitioners")
    clinicians = _users(organization, options.practitioners, tag, rng)
    seeded.clinicians = [c.pk for c in clinicians]
    schedules = Schedule.objects.bulk_create(
        [
            Schedule(
                clinician=c,
                specialty_code=SPECIALTIES[i % len(SPECIALTIES)][0],
                specialty=SPECIALTIES[i % len(SPECIALTIES)][1],
            )
            for i, c in enumerate(clinicians)
        ],
        batch_size=BATCH,
    )
    seeded.schedules = [s.pk for s in schedules]
    offers = Schedule.appointment_types.through
    offers.objects.bulk_create(
        [
            offers(schedule_id=s.pk, appointmenttype_id=t.pk)
            for s in schedules
            for t in (consult, video)
        ],
        batch_size=BATCH,
    )
    today = timezone.localdate()
    rules = [r for s in schedules for r in _rules(s, location, today - dt.timedelta(days=7))]
    AvailabilityRule.objects.bulk_create(rules, batch_size=BATCH)
    days = options.weeks * 7
    first = today + dt.timedelta(days=1)
    absences = _absences(schedules, first, days, rng)
    AvailabilityException.objects.bulk_create(absences, batch_size=BATCH)

    progress(f"seeding {options.patients} patients")
    patients = Patient.objects.bulk_create(
        [
            Patient(
                organization=organization,
                family_name=f"Bench-{i}",
                given_names="Sched",
                birth_date=dt.date(1940, 1, 1) + dt.timedelta(days=i * 37 % 25_000),
            )
            for i in range(options.patients)
        ],
        batch_size=BATCH,
    )
    seeded.patients = [p.pk for p in patients]

    bookings = _bookings(
        seeded,
        schedules,
        {a.schedule_id: (a.starts_at, a.ends_at) for a in absences},
        first,
        days,
        options.booked_share,
        rng,
    )
    progress(f"booking {len(bookings)} appointments of {seeded.slots} grid slots")
    # Patients in turn, by start: one comes back only after `patients` appointments, hours
    # later, so none is in two places at once (the patient exclusion constraint).
    for start in range(0, len(bookings), BATCH):
        chunk = bookings[start : start + BATCH]
        with transaction.atomic():
            appointments = Appointment.objects.bulk_create(
                [
                    Appointment(
                        patient_id=seeded.patients[(start + i) % len(seeded.patients)],
                        type=kind,
                        starts_at=starts,
                        ends_at=ends,
                        mode=kind.mode,
                        location_id=place,
                        booked_by=coordinator,
                    )
                    for i, (_clinician, kind, starts, ends, place) in enumerate(chunk)
                ]
            )
            Participant.objects.bulk_create(
                [
                    Participant(
                        appointment=appointment,
                        user_id=clinician,
                        starts_at=appointment.starts_at,
                        ends_at=appointment.ends_at,
                    )
                    for appointment, (clinician, *_rest) in zip(appointments, chunk, strict=True)
                ]
            )
    seeded.appointments = len(bookings)
    with connection.cursor() as cursor:
        for table in (Appointment, Participant, AvailabilityRule, AvailabilityException, Schedule):
            cursor.execute(f"ANALYZE {table._meta.db_table}")  # noqa: S608 - model names
    return seeded


def cleanup(progress: Progress) -> None:
    """Delete every bench row (also those of an earlier run that was interrupted)."""
    organizations = Organization.objects.filter(name=ORGANIZATION_NAME)
    users = User.objects.filter(organization__in=organizations)
    types = AppointmentType.objects.filter(code__startswith=TYPE_PREFIX)
    progress("cleaning up")
    with transaction.atomic():
        appointments = Appointment.objects.filter(type__in=types)
        Participant.objects.filter(appointment__in=appointments).delete()
        appointments.delete()
        Schedule.objects.filter(clinician__in=users).delete()  # rules, exceptions cascade
        Patient.objects.filter(organization__in=organizations).delete()
        Location.objects.filter(organization__in=organizations).delete()
        TOTPDevice.objects.filter(user__in=users).delete()
        users.delete()
        types.delete()
        organizations.delete()


# ---------------------------------------------------------------------------------------------
# Measuring


def _figures(timings: list[float], queries: int, **extra: Any) -> dict[str, Any]:
    timings = sorted(timings)
    return {
        "runs": len(timings),
        "p50_ms": round(percentile(timings, 50), 1),
        "p95_ms": round(percentile(timings, 95), 1),
        "max_ms": round(timings[-1], 1),
        "queries": queries,
        **extra,
    }


def _search(runs: int, search: Callable[[int], list[Any]]) -> dict[str, Any]:
    search(0)  # warm-up
    with CaptureQueriesContext(connection) as captured:
        found = search(0)
    timings = []
    for run in range(runs):
        started = time.perf_counter()
        search(run)
        timings.append((time.perf_counter() - started) * 1000)
    return _figures(timings, len(captured.captured_queries), slots=len(found))


FIRST_PAGE = 60  # the booking page shows up to 60 slots


def measure_slots(seeded: Seeded, options: Options, progress: Progress) -> dict[str, Any]:
    start = timezone.now() + dt.timedelta(days=1)
    end = start + dt.timedelta(days=SEARCH_DAYS)
    kind = seeded.consult
    specialty = SPECIALTIES[1][1]
    progress(f"free-slot searches over {SEARCH_DAYS} days, {options.runs} runs each")
    return {
        # What the booking page asks: the first free slots of every schedule.
        "first_page_all_schedules": _search(
            options.runs, lambda _run: free_slots(kind, start, end, limit=FIRST_PAGE)
        ),
        "first_page_by_specialty": _search(
            options.runs,
            lambda _run: free_slots(kind, start, end, specialty=specialty, limit=FIRST_PAGE),
        ),
        # Every free slot of every schedule over the whole period (a full export).
        "all_schedules": _search(options.runs, lambda _run: free_slots(kind, start, end)),
        "by_specialty": _search(
            options.runs, lambda _run: free_slots(kind, start, end, specialty=specialty)
        ),
        "one_practitioner": _search(
            options.runs,
            lambda run: free_slots(
                kind, start, end, schedules=[seeded.schedules[run % len(seeded.schedules)]]
            ),
        ),
    }


def _client(user: User, device: TOTPDevice) -> Client:
    """Signed in as `user`, second factor passed (as `tests.conftest.verified_client`)."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def measure_agenda(seeded: Seeded, options: Options, progress: Progress) -> dict[str, Any] | None:
    """The team agenda's week page, or None when the page is not installed."""
    try:
        url = reverse("scheduling:team_agenda")
    except NoReverseMatch:
        return None
    monday = timezone.localdate() + dt.timedelta(days=7 - timezone.localdate().weekday())
    team = seeded.clinicians[: options.team_size]
    query = "&".join(f"clinician={pk}" for pk in team)
    url = f"{url}?view=week&date={monday.isoformat()}&{query}"
    added_host = "testserver" not in settings.ALLOWED_HOSTS and "*" not in settings.ALLOWED_HOSTS
    if added_host:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = _client(seeded.coordinator, seeded.device)
    progress(f"team agenda week page, {len(team)} clinicians, {options.agenda_runs} requests")

    def get() -> Any:
        response = client.get(url, secure=True)
        if response.status_code != 200:
            raise BenchError(f"GET {url} answered {response.status_code}")
        return response

    try:
        get()  # warm-up
        with CaptureQueriesContext(connection) as captured:
            page = get()
        queries = len(captured.captured_queries)
        timings = []
        for _ in range(options.agenda_runs):
            started = time.perf_counter()
            get()
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        client.logout()
        if added_host:
            settings.ALLOWED_HOSTS = [h for h in settings.ALLOWED_HOSTS if h != "testserver"]
    return _figures(timings, queries, clinicians=len(team), bytes=len(page.content), url=url)


def run(options: Options, progress: Progress) -> dict[str, Any]:
    if options.practitioners < 1 or options.weeks < 3 or options.patients < 1:
        raise BenchError("at least 1 practitioner, 3 weeks and 1 patient")
    cleanup(progress)  # the leftovers of an interrupted run would skew the figures
    started = time.perf_counter()
    seeded = seed(options, progress)
    seeding_s = time.perf_counter() - started
    try:
        slots = measure_slots(seeded, options, progress)
        agenda = measure_agenda(seeded, options, progress)
    finally:
        if not options.keep:
            cleanup(progress)
    return {
        "database": connection.vendor,
        "seeded": {
            "practitioners": len(seeded.clinicians),
            "weeks": options.weeks,
            "grid_slots": seeded.slots,
            "appointments": seeded.appointments,
            "booked_share": round(seeded.appointments / max(seeded.slots, 1), 3),
            "patients": len(seeded.patients),
            "seconds": round(seeding_s, 1),
        },
        "free_slots": {"days": SEARCH_DAYS, "type": seeded.consult.code, **slots},
        "team_agenda": agenda,
        "target": {
            "free_slot_p95_ms": TARGET_MS,
            "met": {name: figures["p95_ms"] < TARGET_MS for name, figures in slots.items()},
        },
        "kept": options.keep,
    }
