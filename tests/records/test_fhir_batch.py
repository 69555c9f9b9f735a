"""Batch serialization for $export: the same resources as `to_fhir`, from plain column tuples."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from apps.accounts.models import Role, User
from apps.records.fhir import to_fhir, validate
from apps.records.fhir.batch import (
    _instant,
    batch_lines,
    condition_lines,
    dumps_line,
    encounter_lines,
    observation_lines,
)
from apps.records.fhir.helpers import _clean
from apps.records.models import (
    AllergyIntolerance,
    CodeSystem,
    Concept,
    Condition,
    DiagnosticReport,
    Encounter,
    Observation,
    ObservationNote,
    Patient,
    Practitioner,
)

UTC = dt.UTC


def _lines(queryset: Any, block_size: int = 3) -> list[bytes]:
    return [line for block in observation_lines(queryset, block_size) for line in block]


@pytest.fixture
def population(
    record: Patient,
    record2: Patient,
    clinician: User,
    make_user: Callable[..., User],
    make_observation: Callable[..., Observation],
    concept: Callable[..., Concept],
) -> list[Observation]:
    """Observations that between them use every element the mapping can write or leave out."""
    Practitioner.objects.create(user=clinician, registration_number="7601000123456")
    nurse = make_user(Role.NURSE)  # no Practitioner: referenced by account only
    nameless = make_user(Role.NURSE, first_name="", last_name="")
    glucose = concept("2345-7", display="Glucose", category="laboratory", unit="mmol/L")
    bare = concept("0000-0", display="", unit="")
    encounter = Encounter.objects.create(
        patient=record, status="finished", started_at=dt.datetime(2026, 1, 5, 9, tzinfo=UTC)
    )
    report = DiagnosticReport.objects.create(
        patient=record,
        code=glucose,
        category="LAB",
        issued_at=dt.datetime(2026, 1, 5, 10, tzinfo=UTC),
    )
    made = [
        make_observation(record, 72, recorded_by=clinician),
        make_observation(record, "36.65", recorded_by=nurse, device_id="dev-7", source="device"),
        make_observation(record, "-0.5", ref_low=None, ref_high=None, recorded_by=nameless),
        make_observation(
            record2,
            "12345678.1234",
            code=glucose,
            category="laboratory",
            ref_low=Decimal("3.9"),
            ref_high=None,
            report=report,
            encounter=encounter,
            status="preliminary",
            interpretation="HH",
        ),
        make_observation(record2, 5, code=bare, unit="", ref_low=None, ref_high=None),
        make_observation(record, 140, sensitivity="mental_health", source=""),
        make_observation(record, 141, sensitivity="sexual_health", category="", status="amended"),
        make_observation(record, 142, sensitivity="addiction", interpretation="X"),
    ]
    # Times whose fraction PostgreSQL prints shortened: none, trailing zeros, all six digits.
    times = [
        dt.datetime(2026, 2, 1, 8, 0, 0, tzinfo=UTC),
        dt.datetime(2026, 2, 1, 8, 0, 0, 120000, tzinfo=UTC),
        dt.datetime(2026, 2, 1, 8, 0, 0, 123456, tzinfo=UTC),
        dt.datetime(1999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    ]
    for n, observation in enumerate(made):
        Observation.objects.filter(pk=observation.pk).update(
            effective_at=times[n % 4], recorded_at=times[(n + 1) % 4], updated_at=times[(n + 2) % 4]
        )
    first, second = made[0], made[3]
    ObservationNote.objects.create(
        observation=first, author=nurse, text="later", created_at=times[2]
    )
    ObservationNote.objects.create(
        observation=first,
        author=clinician,
        text='earlier, with ünïcode "quotes"\n',
        created_at=times[1],
    )
    ObservationNote.objects.create(
        observation=second, author=nameless, text="by a nameless author", created_at=times[0]
    )
    return made


@pytest.mark.parametrize("language", ["fr", "en"])
def test_lines_equal_to_fhir_for_every_row(population: list[Observation], language: str) -> None:
    with translation.override(language):
        lines = _lines(Observation.objects.all())

        assert len(lines) == len(population)
        for line in lines:
            assert line.endswith(b"\n") and line.count(b"\n") == 1
            resource = json.loads(line)
            stored = Observation.objects.get(fhir_id=resource["id"])
            expected = to_fhir(stored)
            assert resource == expected
            assert line == dumps_line(expected)  # same bytes, key order included
            validate(resource)


def test_lines_keep_the_querysets_filters(population: list[Observation], record2: Patient) -> None:
    lines = _lines(Observation.objects.filter(patient=record2), block_size=1)
    ids = {json.loads(line)["id"] for line in lines}
    assert ids == {str(o.fhir_id) for o in population if o.patient_id == record2.pk}


def test_queries_per_block_do_not_grow_with_rows(
    population: list[Observation],
    make_observation: Callable[..., Observation],
    record: Patient,
    clinician: User,
) -> None:
    with CaptureQueriesContext(connection) as few:
        _lines(Observation.objects.all(), block_size=1000)
    for value in range(30):
        observation = make_observation(record, value)
        ObservationNote.objects.create(
            observation=observation, author=clinician, text=f"note {value}"
        )
    with CaptureQueriesContext(connection) as many:
        _lines(Observation.objects.all(), block_size=1000)
    assert len(many) <= len(few)


def test_only_batched_models_have_a_serializer(db: None) -> None:
    assert batch_lines(Observation) is observation_lines
    assert batch_lines(Encounter) is encounter_lines
    assert batch_lines(Condition) is condition_lines
    assert batch_lines(AllergyIntolerance) is None


def test_encounter_and_condition_lines_equal_to_fhir(
    record: Patient,
    record2: Patient,
    clinician: User,
    make_user: Callable[..., User],
    concept: Callable[..., Concept],
) -> None:
    # given encounters and conditions that use, or leave out, each element
    Practitioner.objects.create(user=clinician, registration_number="7601000123456")
    nurse = make_user(Role.NURSE, first_name="", last_name="")
    start = dt.datetime(2026, 1, 5, 9, 0, 0, 250000, tzinfo=UTC)
    visit = Encounter.objects.create(
        patient=record,
        status="finished",
        practitioner=clinician,
        started_at=start,
        ended_at=start + dt.timedelta(minutes=20),
        reason="Suivi tension",
        recorded_by=nurse,
    )
    Encounter.objects.create(
        patient=record2, status="planned", kind="HH", started_at=start, sensitivity="addiction"
    )
    Encounter.objects.create(patient=record2, status="in-progress", kind="IMP", started_at=start)
    icd = "http://hl7.org/fhir/sid/icd-10"
    Condition.objects.create(
        patient=record,
        code=concept("I10", icd, display="Hypertension", display_de="Bluthochdruck"),
        recorded_by=clinician,
        onset_date=dt.date(2020, 1, 1),
        abatement_date=dt.date(2024, 6, 30),
        note="Sous traitement",
        encounter=visit,
    )
    Condition.objects.create(
        patient=record2,
        code=concept("F32", icd, display="Depression"),
        sensitivity="mental_health",
        verification_status="",
        clinical_status="resolved",
    )
    Encounter.objects.filter(patient=record2).update(
        updated_at=dt.datetime(2026, 2, 1, tzinfo=UTC), recorded_at=start
    )

    for language in ("de", "fr"):
        with translation.override(language):
            for model, serializer in ((Encounter, encounter_lines), (Condition, condition_lines)):
                # when their rows are serialized in blocks
                lines = [line for block in serializer(model.objects.all(), 2) for line in block]

                # then each line is to_fhir's resource, valid R4
                assert len(lines) == model.objects.count()
                for line in lines:
                    resource = json.loads(line)
                    expected = to_fhir(model.objects.get(fhir_id=resource["id"]))
                    assert resource == expected
                    assert line == dumps_line(expected)
                    validate(resource)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01 10:00:00+00", "2026-03-01T10:00:00+00:00"),
        ("2026-03-01 10:00:00.12+00", "2026-03-01T10:00:00.120000+00:00"),
        ("2026-03-01 10:00:00.000001+00", "2026-03-01T10:00:00.000001+00:00"),
        ("2026-03-01 10:00:00.123456+00", "2026-03-01T10:00:00.123456+00:00"),
        (None, None),
    ],
)
def test_instants_read_as_text_match_isoformat(text: str | None, expected: str | None) -> None:
    assert _instant(text) == expected
    if text is not None:
        parsed = dt.datetime.fromisoformat(text + ":00")
        assert parsed.isoformat() == expected


def test_an_unexpected_time_format_is_an_error_not_a_wrong_line() -> None:
    with pytest.raises(ValueError, match="DateStyle ISO"):
        _instant("03/01/2026 10:00:00.12 UTC")


def _reference_clean(value: Any) -> Any:
    """The original definition of `_clean`, to hold the faster one to it."""

    def empty(item: Any) -> bool:
        return item is None or (isinstance(item, (str, list, dict)) and not item)

    if isinstance(value, dict):
        cleaned = {k: _reference_clean(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if not empty(v)}
    if isinstance(value, list):
        return [item for item in (_reference_clean(v) for v in value) if not empty(item)]
    return value


def test_clean_drops_exactly_the_empty_elements() -> None:
    tricky = {
        "a": "",
        "b": CodeSystem.LOINC,
        "c": [None, "", [], {}, [[{}]], {"x": [None]}, 0, False, "x"],
        "d": {"e": {"f": {"g": None}}},
        "h": 0,
        "i": False,
        "j": [{"k": ""}, {"k": "v", "l": [{"m": None}]}],
        "n": CodeSystem("http://loinc.org"),
    }
    assert _clean(tricky) == _reference_clean(tricky)
    assert _clean(tricky) == {
        "b": CodeSystem.LOINC,
        "c": [0, False, "x"],
        "h": 0,
        "i": False,
        "j": [{"k": "v"}],
        "n": "http://loinc.org",
    }
    assert _clean([]) == [] and _clean("") == "" and _clean(None) is None
