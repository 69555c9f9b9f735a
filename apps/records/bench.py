"""Population code shared by the benchmarks (`bench_records`, `bench_fhir`).

Rows are made the way the application would store them (interpretation computed, FHIR ids
random UUIDs, versions 1), only faster: patients in batches of `bulk_create`, observations with
PostgreSQL's COPY (about 10x faster than `bulk_create`; other databases fall back to it).
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection

from apps.accounts.models import Organization

from .models import CodeSystem, Concept, Observation, Patient, Sensitivity, interpret

BATCH = 2000
SPAN_DAYS = 365

# Used only when the reference data is not loaded: (LOINC, display, UCUM unit, low, high).
VITAL_SIGNS: list[tuple[str, str, str, str, str]] = [
    ("8867-4", "Heart rate", "/min", "50", "100"),
    ("8480-6", "Systolic blood pressure", "mm[Hg]", "90", "140"),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", "60", "90"),
    ("8310-5", "Body temperature", "Cel", "36.1", "37.5"),
    ("9279-1", "Respiratory rate", "/min", "12", "20"),
    ("59408-5", "Oxygen saturation by pulse oximetry", "%", "95", "100"),
    ("29463-7", "Body weight", "kg", "50", "90"),
    ("8302-2", "Body height", "cm", "150", "190"),
]
FAMILY_NAMES = ["Muller", "Rochat", "Favre", "Bonvin", "Keller", "Meier", "Rossi", "Dubois"]
GIVEN_NAMES = ["Anna", "Luc", "Sofia", "Marc", "Léa", "Noah", "Elena", "Hugo", "Mia", "Jonas"]

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ObservationSpec:
    """One observation to seed: whose, what, when, by whom."""

    patient_id: int
    concept: Concept
    at: datetime
    recorded_by_id: int | None


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def batches(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def vital_concepts(created: list[int]) -> list[Concept]:
    """The vital-sign codes (from the reference data, else made; their pks go to `created`)."""
    concepts = list(Concept.objects.filter(category="vital-signs").order_by("pk")[:12])
    if concepts:
        return concepts
    for code, display, unit, low, high in VITAL_SIGNS:
        concept, was_created = Concept.objects.get_or_create(
            system=CodeSystem.LOINC,
            code=code,
            defaults={
                "display": display,
                "category": "vital-signs",
                "unit": unit,
                "low": Decimal(low),
                "high": Decimal(high),
            },
        )
        if was_created:
            created.append(concept.pk)
        concepts.append(concept)
    return concepts


def seed_patients(organization: Organization, total: int, progress: Progress) -> list[int]:
    """`total` patients of `organization`; their pks in creation order."""
    made = 0
    for batch in batches(range(total)):
        Patient.objects.bulk_create(
            [
                Patient(
                    organization=organization,
                    family_name=f"{FAMILY_NAMES[i % len(FAMILY_NAMES)]}-{i}",
                    given_names=GIVEN_NAMES[i % len(GIVEN_NAMES)],
                    birth_date=date(1930, 1, 1) + timedelta(days=(i * 37) % 30_000),
                    sex=("female", "male")[i % 2],
                )
                for i in batch
            ],
            batch_size=BATCH,
        )
        made += len(batch)
        progress(f"{made}/{total} patients")
    return list(
        Patient.objects.filter(organization=organization)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _value(rng: random.Random, concept: Concept) -> Decimal:
    low = concept.low if concept.low is not None else Decimal(0)
    high = concept.high if concept.high is not None else low + 100
    middle, width = (low + high) / 2, high - low
    # Mostly in range, about one value in ten outside it.
    return (middle + width * Decimal(rng.gauss(0, 0.35))).quantize(Decimal("0.1"))


def observation(rng: random.Random, spec: ObservationSpec) -> Observation:
    """An unsaved observation as the chart would record it."""
    concept = spec.concept
    value = _value(rng, concept)
    return Observation(
        patient_id=spec.patient_id,
        code=concept,
        category="vital-signs",
        value=value,
        unit=concept.unit,
        ref_low=concept.low,
        ref_high=concept.high,
        interpretation=interpret(value, concept.low, concept.high),
        effective_at=spec.at,
        recorded_at=spec.at,
        recorded_by_id=spec.recorded_by_id,
    )


_COLUMNS = (
    "fhir_id",
    "version",
    "updated_at",
    "patient_id",
    "sensitivity",
    "recorded_by_id",
    "recorded_at",
    "code_id",
    "category",
    "status",
    "value",
    "unit",
    "ref_low",
    "ref_high",
    "interpretation",
    "effective_at",
    "source",
    "device_id",
)


def _row(rng: random.Random, spec: ObservationSpec, now: datetime) -> tuple[Any, ...]:
    concept = spec.concept
    value = _value(rng, concept)
    return (
        uuid.UUID(int=rng.getrandbits(128), version=4),
        1,
        now,
        spec.patient_id,
        Sensitivity.NORMAL.value,
        spec.recorded_by_id,
        spec.at,
        concept.pk,
        "vital-signs",
        "final",
        value,
        concept.unit,
        concept.low,
        concept.high,
        interpret(value, concept.low, concept.high),
        spec.at,
        "manual",
        "",
    )


def seed_observations(
    specs: Iterable[ObservationSpec],
    total: int,
    rng: random.Random,
    progress: Progress,
    label: str = "observations",
) -> None:
    """Insert the observations `specs` describe (`total` of them, for progress)."""
    made = 0
    if connection.vendor != "postgresql":
        for batch in batches(specs):
            Observation.objects.bulk_create([observation(rng, s) for s in batch], batch_size=BATCH)
            made += len(batch)
            progress(f"{made}/{total} {label}")
        return
    table = connection.ops.quote_name(Observation._meta.db_table)
    columns = ", ".join(_COLUMNS)
    now = datetime.now(tz=UTC)
    step = max(BATCH * 50, total // 10)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: COPY is not part of the DB-API
        with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for spec in specs:
                copy.write_row(_row(rng, spec, now))
                made += 1
                if made % step == 0:
                    progress(f"{made}/{total} {label}")
    progress(f"{made}/{total} {label}")


def analyze(*models: type[Any]) -> None:
    """Fresh planner statistics (and visibility map, for index-only counts) after seeding."""
    if connection.vendor != "postgresql":
        return
    # VACUUM cannot run inside a transaction (tests): ANALYZE alone then.
    command = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
    with connection.cursor() as cursor:
        for model in models:
            cursor.execute(f"{command} {connection.ops.quote_name(model._meta.db_table)}")


def spread(
    patient_ids: list[int],
    concepts: list[Concept],
    total: int,
    now: datetime,
    recorded_by_id: int | None,
    rng: random.Random,
) -> Iterator[ObservationSpec]:
    """`total` observations over the patients in turn, at random times of the last year."""
    minutes = SPAN_DAYS * 24 * 60
    count = len(patient_ids)
    for i in range(total):
        yield ObservationSpec(
            patient_ids[i % count],
            concepts[(i // count) % len(concepts)],
            now - timedelta(minutes=rng.randrange(minutes)),
            recorded_by_id,
        )
