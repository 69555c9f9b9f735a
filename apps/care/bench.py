"""The care coordination benchmark (`manage.py bench_care`): the population.

Seeds, under an organisation of its own ("Bench care"), a clinic running care coordination:
`patients` patients with portal accounts and `clinicians` clinicians in practices of five (a
lead physician, a nurse, a physician, a nurse, a care coordinator); each patient's care team is
their practice, with the guardian grants the care-team service would give. Each patient has:

- a signed prescription of the drugs of their pathway (heart failure, type 2 diabetes, COPD,
  post-operative follow-up), lines taken every day for 90 days;
- `days` days of readings from home devices (blood pressure twice a day, weight, pulse, and
  glucose or oxygen saturation by pathway), some patients above target or drifting, so that the
  decision-support rules have real work;
- a care plan built from their pathway through the plans service (goals, activities, the tasks
  and monitoring thresholds the pathway makes: all its rules and audit rows);
- a few tasks of the team's everyday work, most done, some open; the first practice's first
  nurse (the measured one) is given open tasks until she has `nurse_tasks`, due around today,
  some overdue; the practice's second nurse has two (the small list the query counts are
  compared with).

Reference data (codes, medications, pathways, questionnaires, rules) are loaded with their
loaders (idempotent) and left in place. Bench users get no e-mail or SMS (their notification
preferences say so): everything stays in the in-app inbox. Rows go in with `bulk_create` but
the plans, which go through their service as the application makes them.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.utils import timezone

from apps.accounts.models import Organization, Role, User
from apps.notifications.kinds import KINDS
from apps.notifications.models import Preference
from apps.records.access import check_patient_access
from apps.records.models import (
    CareTeam,
    CareTeamMember,
    Concept,
    Medication,
    MedicationRequest,
    Observation,
    Patient,
    PatientUserObjectPermission,
    Prescription,
)
from apps.records.models.clinical import interpret
from apps.records.reference import load_reference_data

from .models import CarePlan, Pathway, Task
from .models.tasks import OPEN_TASK_STATUSES
from .reference import load_care_reference
from .services.plans import do_create_plan_from_pathway

Progress = Callable[[str], None]
T = TypeVar("T")

ORGANIZATION_NAME = "Bench care"
EMAIL_PREFIX = "bench-care-"
BATCH = 2000
PRACTICE_SIZE = 5
PRACTICE_ROLES = [Role.PHYSICIAN, Role.NURSE, Role.PHYSICIAN, Role.NURSE, Role.COORDINATOR]
BIG_NURSE, SMALL_NURSE, COORDINATOR = 1, 3, 4  # positions in a practice
PATHWAYS = ["heart-failure", "type-2-diabetes", "copd", "post-operative"]
# (ATC code, dose, times a day) of each pathway's prescription.
DRUGS: dict[str, list[tuple[str, str, int]]] = {
    "heart-failure": [("C07AB07", "1 cp", 1), ("C09AA05", "1 cp", 1), ("C03CA01", "1 cp", 1)],
    "type-2-diabetes": [("A10BA02", "1 cp", 2), ("C09AA05", "1 cp", 1)],
    "copd": [("C08CA01", "1 cp", 1)],
    "post-operative": [("N02BE01", "1 cp", 3)],
}
TASK_TITLES = [
    (Task.Kind.CALL, "Appeler pour le suivi"),
    (Task.Kind.WOUND_CARE, "Refaire le pansement"),
    (Task.Kind.REVIEW_RESULTS, "Revoir les mesures de la semaine"),
    (Task.Kind.MEDICATION_REVIEW, "Revoir le traitement"),
    (Task.Kind.EDUCATION, "Éducation thérapeutique"),
    (Task.Kind.VISIT, "Visite à domicile"),
]


class BenchError(Exception):
    pass


@dataclass(frozen=True)
class Options:
    patients: int = 300
    clinicians: int = 20
    nurse_tasks: int = 200
    days: int = 30
    requests: int = 20
    seed: int = 10
    keep: bool = False
    # Run even though the database holds patients that are not the benchmark's.
    yes: bool = False


@dataclass
class Seeded:
    organization: Organization
    now: dt.datetime
    patients: list[Patient] = field(default_factory=list)
    clinicians: list[User] = field(default_factory=list)
    practice_of: list[int] = field(default_factory=list)  # per patient
    pathway_of: list[str] = field(default_factory=list)  # per patient
    plans: list[CarePlan] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def staff(self, practice: int, position: int) -> User:
        return self.clinicians[practice * PRACTICE_SIZE + position]

    @property
    def big_nurse(self) -> User:
        return self.staff(0, BIG_NURSE)

    @property
    def small_nurse(self) -> User:
        return self.staff(0, SMALL_NURSE)


def batches(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _timed(seeded: Seeded, name: str, started: float) -> None:
    seeded.seconds[name] = round(time.perf_counter() - started, 2)


# ---------------------------------------------------------------------------------------------
# People and care teams


def _seed_people(seeded: Seeded, options: Options) -> None:
    organization = seeded.organization
    tag = secrets.token_hex(4)
    password = make_password(None)
    practices = options.clinicians // PRACTICE_SIZE
    staff = [
        User(
            email=f"{EMAIL_PREFIX}{tag}-c{i}@bench.invalid",
            first_name="Bench",
            last_name=f"Clinician {i}",
            role=PRACTICE_ROLES[i % PRACTICE_SIZE],
            organization=organization,
            password=password,
        )
        for i in range(practices * PRACTICE_SIZE)
    ]
    portal = [
        User(
            email=f"{EMAIL_PREFIX}{tag}-p{i}@bench.invalid",
            first_name="Bench",
            last_name=f"Patient {i}",
            role=Role.PATIENT,
            password=password,
        )
        for i in range(options.patients)
    ]
    seeded.clinicians = User.objects.bulk_create(staff, batch_size=BATCH)
    users = User.objects.bulk_create(portal, batch_size=BATCH)
    # In-app only: a benchmark must not send e-mails or text messages.
    Preference.objects.bulk_create(
        [
            Preference(user=user, kind=kind, email=False, sms=False)
            for user in [*seeded.clinicians, *users]
            for kind in KINDS
        ],
        batch_size=BATCH,
    )
    records = [
        Patient(
            user=user,
            organization=organization,
            family_name=f"Bench-{i}",
            given_names=("Anna", "Luc", "Sofia", "Marc", "Léa", "Noah")[i % 6],
            birth_date=dt.date(1935, 1, 1) + dt.timedelta(days=(i * 53) % 20_000),
            sex=("female", "male")[i % 2],
        )
        for i, user in enumerate(users)
    ]
    seeded.patients = Patient.objects.bulk_create(records, batch_size=BATCH)
    for patient, user in zip(seeded.patients, users, strict=True):
        patient.user = user
    seeded.practice_of = [i % practices for i in range(options.patients)]
    seeded.pathway_of = [
        PATHWAYS[(i // practices) % len(PATHWAYS)] for i in range(options.patients)
    ]


def _seed_care_teams(seeded: Seeded) -> None:
    """Each patient's practice as their care team, lead first, with the access grants."""
    teams = CareTeam.objects.bulk_create(
        [
            CareTeam(patient=p, name=f"Équipe — {p.pk}", organization=seeded.organization)
            for p in seeded.patients
        ],
        batch_size=BATCH,
    )
    permission = Permission.objects.get(content_type__app_label="records", codename="access_record")
    members, grants = [], []
    for team, patient, practice in zip(teams, seeded.patients, seeded.practice_of, strict=True):
        for position in range(PRACTICE_SIZE):
            user = seeded.staff(practice, position)
            members.append(
                CareTeamMember(care_team=team, user=user, role=user.role, is_lead=position == 0)
            )
            grants.append(
                PatientUserObjectPermission(
                    permission=permission, user=user, content_object=patient
                )
            )
    CareTeamMember.objects.bulk_create(members, batch_size=BATCH)
    PatientUserObjectPermission.objects.bulk_create(grants, batch_size=BATCH)


# ---------------------------------------------------------------------------------------------
# Prescriptions and device readings


def _seed_prescriptions(seeded: Seeded, rng: random.Random) -> None:
    medications = {m.atc_code: m for m in Medication.objects.order_by("pk")}
    missing = {atc for lines in DRUGS.values() for atc, _dose, _n in lines} - set(medications)
    if missing:
        raise BenchError(f"medications missing from the reference data: {sorted(missing)}")
    tag = secrets.token_hex(3)
    prescriptions, plans = [], []
    for i, patient in enumerate(seeded.patients):
        signed = seeded.now - dt.timedelta(days=rng.randint(5, 60), hours=rng.randint(0, 8))
        prescriber = seeded.staff(seeded.practice_of[i], 0)
        prescriptions.append(
            Prescription(
                patient=patient,
                prescriber=prescriber,
                recorded_by=prescriber,
                recorded_at=signed,
                status=Prescription.Status.ACTIVE,
                number=f"BC{tag}{i:07d}",
                verification_token=secrets.token_urlsafe(24),
                signed_at=signed,
                valid_until=(signed + dt.timedelta(days=120)).date(),
            )
        )
        plans.append(DRUGS[seeded.pathway_of[i]])
    made = Prescription.objects.bulk_create(prescriptions, batch_size=BATCH)
    lines = [
        MedicationRequest(
            patient_id=prescription.patient_id,
            prescription=prescription,
            medication=medications[atc],
            dose=dose,
            frequency=per_day,
            duration_days=90,
            quantity=3,
            recorded_by_id=prescription.prescriber_id,
            recorded_at=prescription.recorded_at,
        )
        for prescription, drugs in zip(made, plans, strict=True)
        for atc, dose, per_day in drugs
    ]
    MedicationRequest.objects.bulk_create(lines, batch_size=BATCH)
    seeded.counts["prescription_lines"] = len(lines)


def _series(pathway: str, rng: random.Random) -> list[tuple[str, float, float, int]]:
    """(code, start value, daily drift, readings a day) of a patient's home devices."""
    high = rng.random() < 0.25  # a quarter stay above their blood-pressure target
    series = [
        ("8480-6", rng.uniform(138, 150) if high else rng.uniform(118, 132), 0.0, 2),
        ("8462-4", rng.uniform(84, 92) if high else rng.uniform(70, 82), 0.0, 2),
        ("8867-4", rng.uniform(62, 84), 0.0, 1),
    ]
    if pathway == "heart-failure":
        series.append(("29463-7", rng.uniform(60, 95), rng.choice([0.0, 0.0, 0.08]), 1))
    elif pathway == "type-2-diabetes":
        series.append(("15074-8", rng.uniform(6.5, 8.5), rng.choice([0.0, 0.0, 0.12]), 2))
    elif pathway == "copd":
        series.append(("59408-5", rng.uniform(91, 96), 0.0, 1))
    else:
        series.append(("8310-5", rng.uniform(36.6, 37.4), 0.0, 1))
    return series


def _seed_observations(seeded: Seeded, options: Options, rng: random.Random) -> None:
    codes = {c.code: c for c in Concept.objects.filter(system="http://loinc.org")}
    rows: list[Observation] = []
    total = 0
    start = seeded.now - dt.timedelta(days=options.days)
    for i, patient in enumerate(seeded.patients):
        device = f"bench-{patient.pk}"
        for code, value, drift, per_day in _series(seeded.pathway_of[i], rng):
            concept = codes[code]
            for day in range(options.days):
                for n in range(per_day):
                    at = start + dt.timedelta(
                        days=day, hours=7 + 11 * n, minutes=rng.randint(0, 50)
                    )
                    if at > seeded.now:
                        continue
                    spread = abs(value) * 0.03
                    reading = Decimal(f"{value + drift * day + rng.gauss(0, spread):.1f}")
                    rows.append(
                        Observation(
                            patient=patient,
                            code=concept,
                            category=concept.category or "vital-signs",
                            value=reading,
                            unit=concept.unit,
                            ref_low=concept.low,
                            ref_high=concept.high,
                            interpretation=interpret(reading, concept.low, concept.high),
                            effective_at=at,
                            recorded_at=at,
                            source="device",
                            device_id=device,
                        )
                    )
        if len(rows) >= BATCH:
            Observation.objects.bulk_create(rows, batch_size=BATCH)
            total += len(rows)
            rows = []
    Observation.objects.bulk_create(rows, batch_size=BATCH)
    seeded.counts["observations"] = total + len(rows)


# ---------------------------------------------------------------------------------------------
# Plans (through the service) and tasks


def _seed_plans(seeded: Seeded, rng: random.Random) -> None:
    pathways = {p.code: p for p in Pathway.objects.filter(code__in=PATHWAYS, active=True)}
    if len(pathways) != len(PATHWAYS):
        raise BenchError(f"pathways missing from the reference data: {PATHWAYS}")
    today = timezone.localdate(seeded.now)
    for i, patient in enumerate(seeded.patients):
        coordinator = seeded.staff(seeded.practice_of[i], COORDINATOR)
        access = check_patient_access(coordinator, patient.pk)
        if access is None:
            raise BenchError(f"the coordinator cannot open patient {patient.pk}")
        seeded.plans.append(
            do_create_plan_from_pathway(
                access,
                pathways[seeded.pathway_of[i]],
                start_date=today - dt.timedelta(days=rng.randint(0, 40)),
                coordinator=coordinator,
            )
        )
    seeded.counts["plans"] = len(seeded.plans)


def _task(
    seeded: Seeded, i: int, rng: random.Random, *, assignee: User, done: bool, due_in: float
) -> Task:
    kind, title = rng.choice(TASK_TITLES)
    created = seeded.now - dt.timedelta(days=rng.uniform(1, 20))
    completed = created + dt.timedelta(hours=rng.uniform(1, 48)) if done else None
    if completed is not None and completed > seeded.now:
        completed = seeded.now
    return Task(
        patient=seeded.patients[i],
        plan=seeded.plans[i],
        kind=kind,
        title=title,
        instructions="Voir le plan de soins et les dernières mesures.",
        status=Task.Status.COMPLETED if done else rng.choice(OPEN_TASK_STATUSES[:2]),
        priority=rng.choice(["routine", "routine", "routine", "urgent", "asap"]),
        assignee=assignee,
        requester=seeded.staff(seeded.practice_of[i], 0),
        due_at=seeded.now + dt.timedelta(days=due_in),
        created_at=created,
        started_at=created if done else None,
        completed_at=completed,
        completed_by=assignee if done else None,
        report="Fait, rien à signaler." if done else "",
    )


def _seed_tasks(seeded: Seeded, options: Options, rng: random.Random) -> None:
    tasks = []
    for i in range(len(seeded.patients)):
        practice = seeded.practice_of[i]
        for _n in range(rng.randint(1, 4)):
            assignee = seeded.staff(practice, rng.choice([0, 2, 4]))
            done = rng.random() < 0.7
            tasks.append(
                _task(seeded, i, rng, assignee=assignee, done=done, due_in=rng.uniform(-10, 10))
            )
    # The measured nurse's list: open tasks over her patients up to `nurse_tasks`.
    nurse, small = seeded.big_nurse, seeded.small_nurse
    hers = [i for i, practice in enumerate(seeded.practice_of) if practice == 0]
    open_already = Task.objects.filter(assignee=nurse, status__in=OPEN_TASK_STATUSES).count()
    for n in range(max(0, options.nurse_tasks - open_already)):
        i = hers[n % len(hers)]
        tasks.append(_task(seeded, i, rng, assignee=nurse, done=False, due_in=rng.uniform(-3, 7)))
    for n in range(2):
        tasks.append(_task(seeded, hers[n % len(hers)], rng, assignee=small, done=False, due_in=2))
    Task.objects.bulk_create(tasks, batch_size=BATCH)
    seeded.counts["tasks"] = Task.objects.filter(patient__organization=seeded.organization).count()
    seeded.counts["nurse_open_tasks"] = Task.objects.filter(
        assignee=nurse, status__in=OPEN_TASK_STATUSES
    ).count()


def seed(options: Options, progress: Progress) -> Seeded:
    if options.clinicians < PRACTICE_SIZE:
        raise BenchError(f"at least {PRACTICE_SIZE} clinicians (one practice)")
    rng = random.Random(options.seed)  # noqa: S311 - benchmark data, not secrets
    started = time.perf_counter()
    load_reference_data()
    load_care_reference()
    step = time.perf_counter()
    organization = Organization.objects.create(name=ORGANIZATION_NAME)
    seeded = Seeded(organization=organization, now=timezone.now())
    _seed_people(seeded, options)
    _seed_care_teams(seeded)
    _timed(seeded, "people", step)
    progress(f"{len(seeded.patients)} patients, {len(seeded.clinicians)} clinicians")
    step = time.perf_counter()
    _seed_prescriptions(seeded, rng)
    _seed_observations(seeded, options, rng)
    _timed(seeded, "records", step)
    progress(f"{seeded.counts['observations']} readings, prescriptions")
    step = time.perf_counter()
    _seed_plans(seeded, rng)
    _timed(seeded, "plans", step)
    progress(f"{len(seeded.plans)} plans through the service")
    step = time.perf_counter()
    _seed_tasks(seeded, options, rng)
    _timed(seeded, "tasks", step)
    seeded.counts["patients"] = len(seeded.patients)
    seeded.counts["clinicians"] = len(seeded.clinicians)
    _timed(seeded, "total", started)
    return seeded


def plan_weight(plan: CarePlan) -> int:
    """How much a plan page shows (goals, activities, tasks): to pick the biggest and smallest."""
    return plan.goals.count() + plan.activities.count() + plan.tasks.count()


def bench_patients() -> Any:
    return Patient.objects.filter(organization__name=ORGANIZATION_NAME)
