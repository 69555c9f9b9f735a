"""Bulk Data $export: kick-off, a real Celery worker, progress, manifest, files, retention."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Organization, User
from apps.audit.models import Action, AuditEvent
from apps.core.crypto import current_key_id
from apps.interop import export
from apps.interop.fhir_api.auth import Caller, parse_scopes
from apps.interop.fhir_api.errors import FhirHttpError
from apps.interop.models import ExportFile, ExportJob
from apps.interop.tasks import purge_expired_exports
from apps.records.fhir import validate
from apps.records.models import (
    AllergyIntolerance,
    CareTeam,
    ClinicalNote,
    Condition,
    DiagnosticReport,
    DocumentReference,
    Encounter,
    MedicationRequest,
    MedicationStatement,
    Observation,
    Patient,
)
from apps.records.services.care_team import default_team, do_add_member
from tests.records.test_export import fill  # noqa: F401 - one of everything in a record

ASYNC = {"Prefer": "respond-async"}
COMPARTMENT_MODELS: dict[str, tuple[type[Any], ...]] = {
    "Patient": (Patient,),
    "CareTeam": (CareTeam,),
    "Encounter": (Encounter,),
    "Condition": (Condition,),
    "AllergyIntolerance": (AllergyIntolerance,),
    "MedicationStatement": (MedicationStatement,),
    "MedicationRequest": (MedicationRequest,),
    "Observation": (Observation,),
    "DiagnosticReport": (DiagnosticReport,),
    "DocumentReference": (DocumentReference, ClinicalNote),
}


@pytest.fixture(autouse=True)
def _export_storage(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def system_caller(scopes: str = "system/*.rs", client_id: str = "test") -> Caller:
    return Caller("system", None, tuple(parse_scopes(scopes)), "test", {"client_id": client_id})


def kick(client: Client, path: str = "/fhir/Patient/$export", **params: Any) -> str:
    """Kick off an export; the job id from Content-Location."""
    response = client.get(path, params, headers=ASYNC)
    assert response.status_code == 202, response.content
    assert response.json()["resourceType"] == "OperationOutcome"
    location = response["Content-Location"]
    assert location.startswith("http://testserver/fhir/bulk/")
    return location.rsplit("/", 1)[1]


def manifest(client: Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/fhir/bulk/{job_id}")
    assert response.status_code == 200, response.content
    assert response["Expires"]
    data: dict[str, Any] = response.json()
    return data


def download(client: Client, data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every file of a manifest, every line parsed and validated as R4, by type."""
    found: dict[str, list[dict[str, Any]]] = {}
    for output in data["output"]:
        response = client.get(output["url"])
        assert response.status_code == 200
        assert response["Content-Type"] == "application/fhir+ndjson"
        lines = b"".join(response.streaming_content).decode().splitlines()  # type: ignore[attr-defined]
        assert len(lines) == output["count"]
        for line in lines:
            resource = json.loads(line)
            validate(resource)
            assert resource["resourceType"] == output["type"]
            found.setdefault(output["type"], []).append(resource)
    return found


def finish(job_id: str, **options: Any) -> ExportJob:
    """Run a queued job here (the test transaction hides it from a worker's connection)."""
    export.run_export(job_id, **options)
    return ExportJob.objects.get(pk=job_id)


def db_counts(patients: list[Patient]) -> dict[str, int]:
    counts = {}
    for name, models in COMPARTMENT_MODELS.items():
        lookup = (
            {"pk__in": [p.pk for p in patients]} if name == "Patient" else {"patient__in": patients}
        )
        total = sum(model.objects.filter(**lookup).count() for model in models)
        if total:
            counts[name] = total
    return counts


@pytest.fixture
def celery_worker(settings: Any) -> Iterator[None]:
    """A real worker thread consuming from the Redis broker (REDIS_URL)."""
    from celery.contrib.testing.worker import start_worker

    from virtualhospital.celery import app

    if not settings.REDIS_URL:
        pytest.fail("The $export worker test needs Redis: set REDIS_URL (make test does).")
    app.conf.task_always_eager = False
    try:
        with start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
            yield
    finally:
        app.conf.task_always_eager = True


def test_export_end_to_end_through_a_real_worker(
    transactional_db: None,
    celery_worker: None,
    record: Patient,
    record2: Patient,
    make_patient: Callable[..., Patient],
    clinician: User,
    fill: Callable[..., dict[str, Any]],  # noqa: F811
    fhir_client: Callable[..., Client],
) -> None:
    # given two patients of the clinician's team with full records, and one outside it
    fill(record)
    fill(record2, " two")
    stranger = make_patient()
    fill(stranger, " stranger")
    client = fhir_client(clinician, "user/*.rs")

    # when the clinician exports and polls until done
    job_id = kick(client)
    deadline = time.monotonic() + 30
    progress = []
    while time.monotonic() < deadline:
        response = client.get(f"/fhir/bulk/{job_id}")
        if response.status_code != 202:
            break
        progress.append(response["X-Progress"])
        assert response["Retry-After"]
        time.sleep(0.05)
    assert response.status_code == 200, (response.status_code, response.content)

    # then the manifest lists every type with counts equal to the database's
    data = response.json()
    assert data["requiresAccessToken"] is True
    assert data["request"].endswith("/fhir/Patient/$export")
    assert data["error"] == []
    assert dt.datetime.fromisoformat(data["transactionTime"]) <= timezone.now()
    files = download(client, data)
    assert {name: len(rows) for name, rows in files.items()} == db_counts([record, record2])
    exported_patients = {row["id"] for row in files["Patient"]}
    assert exported_patients == {str(record.fhir_id), str(record2.fhir_id)}
    assert all(p.endswith("resources)") for p in progress)
    job = ExportJob.objects.get(pk=job_id)
    assert job.resources_done == job.resources_total == sum(len(r) for r in files.values())
    assert AuditEvent.objects.filter(
        action=Action.EXPORT, object_id=job_id, detail__fhir="bulk-export-completed"
    ).exists()


def test_files_are_encrypted_at_rest_and_split(
    record: Patient,
    clinician: User,
    make_observation: Callable[..., Observation],
    fhir_client: Callable[..., Client],
) -> None:
    for value in range(7):
        make_observation(record, value=60 + value)
    client = fhir_client(clinician, "user/*.rs")
    job_id = kick(client, _type="Observation,Patient")

    job = finish(job_id, max_per_file=3, block_size=2)

    assert job.status == ExportJob.Status.COMPLETED
    files = list(ExportFile.objects.filter(job=job, resource_type="Observation"))
    assert [f.count for f in files] == [3, 3, 1]
    assert all(f.key_id == current_key_id() for f in files)
    for stored in files:
        raw = export.storage_path(stored.storage_name).read_bytes()
        assert b"Observation" not in raw and str(record.fhir_id).encode() not in raw
    data = manifest(client, job_id)
    urls = [o["url"].rsplit("/", 1)[1] for o in data["output"]]
    assert urls == ["Observation-1.ndjson", "Observation-2.ndjson", "Observation-3.ndjson"] + [
        "Patient-1.ndjson"
    ]
    rows = download(client, data)
    assert len({r["id"] for r in rows["Observation"]}) == 7


def test_patient_level_follows_the_care_team(
    record: Patient,
    make_patient: Callable[..., Patient],
    clinician: User,
    patient: User,
    make_observation: Callable[..., Observation],
    fhir_client: Callable[..., Client],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.RECORDS_SENSITIVE_ROLES = {**settings.RECORDS_SENSITIVE_ROLES, "sexual_health": []}
    stranger = make_patient()
    make_observation(record)
    make_observation(stranger)
    sensitive = make_observation(record, sensitivity="sexual_health")
    client = fhir_client(clinician, "user/*.rs")

    # the task runs eagerly when the kick-off commits
    with django_capture_on_commit_callbacks(execute=True):
        job_id = kick(client, _type="Patient,Observation")

    rows = download(client, manifest(client, job_id))
    assert [r["id"] for r in rows["Patient"]] == [str(record.fhir_id)]
    exported = {r["id"] for r in rows["Observation"]}
    searched = {e["resource"]["id"] for e in client.get("/fhir/Observation").json()["entry"]}
    assert exported == searched and len(exported) == 1  # not the stranger's, not the sensitive one
    assert str(sensitive.fhir_id) not in exported
    # a patient's own token exports only that patient's compartment
    own = fhir_client(patient, "patient/*.rs")
    own_id = kick(own, _type="Patient,Observation")
    own_rows = download(own, manifest(own, str(finish(own_id).pk)))
    assert [r["id"] for r in own_rows["Patient"]] == [str(record.fhir_id)]
    assert len(own_rows["Observation"]) == 2
    kickoff = AuditEvent.objects.get(object_id=job_id, detail__fhir="bulk-export")
    assert kickoff.action == Action.EXPORT and kickoff.detail["patients"] == 1


def test_group_export_is_the_organization_patients(
    record: Patient,
    make_patient: Callable[..., Patient],
    clinician: User,
    organization: Organization,
    make_observation: Callable[..., Observation],
    fhir_client: Callable[..., Client],
) -> None:
    elsewhere = Organization.objects.create(name="Clinique voisine")
    other = make_patient(organization=elsewhere)
    do_add_member(default_team(other), clinician)
    make_observation(record)
    make_observation(other)
    client = fhir_client(clinician, "user/*.rs")

    job_id = kick(client, f"/fhir/Group/{organization.fhir_id}/$export", _type="Patient")
    rows = download(client, manifest(client, str(finish(job_id).pk)))
    assert [r["id"] for r in rows["Patient"]] == [str(record.fhir_id)]

    job_id = kick(client, f"/fhir/Group/{elsewhere.fhir_id}/$export")
    rows = download(client, manifest(client, str(finish(job_id).pk)))
    assert [r["id"] for r in rows["Patient"]] == [str(other.fhir_id)]
    assert len(rows["Observation"]) == 1

    unknown = client.get("/fhir/Group/6f1c2b0e-0000-4000-8000-000000000000/$export", headers=ASYNC)
    assert unknown.status_code == 404
    assert unknown.json()["resourceType"] == "OperationOutcome"


def test_type_and_since_are_honoured(
    record: Patient,
    clinician: User,
    make_observation: Callable[..., Observation],
    fhir_client: Callable[..., Client],
) -> None:
    old = make_observation(record, value=60)
    new = make_observation(record, value=61)
    long_ago = timezone.now() - dt.timedelta(days=30)
    Observation.objects.filter(pk=old.pk).update(updated_at=long_ago)
    Patient.objects.filter(pk=record.pk).update(updated_at=long_ago)
    client = fhir_client(clinician, "user/*.rs")
    since = (timezone.now() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")

    job_id = kick(client, _type="Observation, Patient", _since=since)
    data = manifest(client, str(finish(job_id).pk))

    assert {o["type"] for o in data["output"]} == {"Observation"}  # the patient is unchanged
    rows = download(client, data)
    assert [r["id"] for r in rows["Observation"]] == [str(new.fhir_id)]
    assert ExportJob.objects.get(pk=job_id).types == ["Observation", "Patient"]


@pytest.mark.parametrize(
    ("params", "headers", "status", "words"),
    [
        ({}, {}, 400, "Prefer: respond-async"),
        ({"_outputFormat": "text/csv"}, ASYNC, 400, "_outputFormat"),
        ({"_type": "Observation,Nonsense"}, ASYNC, 400, "Nonsense"),
        ({"_type": "Practitioner"}, ASYNC, 400, "patient compartment"),
        ({"_type": "Condition"}, ASYNC, 400, "Condition.r"),
        ({"_since": "2024-01-01"}, ASYNC, 400, "FHIR instant"),
        (
            {"_typeFilter": "Observation?code=x"},
            {"Prefer": "respond-async, handling=strict"},
            400,
            "_typeFilter",
        ),
    ],
)
def test_bad_kickoffs_are_operation_outcomes(
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
    params: dict[str, str],
    headers: dict[str, str],
    status: int,
    words: str,
) -> None:
    client = fhir_client(clinician, "user/Observation.rs", "user/Patient.rs")
    response = client.get("/fhir/Patient/$export", params, headers=headers)
    assert response.status_code == status
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert words in outcome["issue"][0]["diagnostics"]
    assert not ExportJob.objects.exists()


def test_lenient_kickoff_ignores_unsupported_parameters_with_a_note(
    record: Patient, clinician: User, fhir_client: Callable[..., Client]
) -> None:
    client = fhir_client(clinician, "user/*.rs")
    response = client.get(
        "/fhir/Patient/$export",
        {"_elements": "id", "_outputFormat": "application/fhir+ndjson"},
        headers=ASYNC,
    )
    assert response.status_code == 202
    assert "_elements were ignored" in response.json()["issue"][0]["diagnostics"]


def test_post_kickoff_with_parameters(
    record: Patient, clinician: User, fhir_client: Callable[..., Client]
) -> None:
    client = fhir_client(clinician, "user/*.rs")
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "_type", "valueString": "Patient"},
            {"name": "_since", "valueInstant": "2000-01-01T00:00:00Z"},
            {"name": "_outputFormat", "valueString": "application/fhir+ndjson"},
        ],
    }
    response = client.post(
        "/fhir/Patient/$export", body, content_type="application/fhir+json", headers=ASYNC
    )
    assert response.status_code == 202, response.content
    job = ExportJob.objects.get()
    assert job.types == ["Patient"] and job.since == dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    broken = client.post(
        "/fhir/Patient/$export", "{", content_type="application/fhir+json", headers=ASYNC
    )
    assert broken.status_code == 400 and "not valid JSON" in broken.content.decode()


def test_system_level_needs_a_system_caller(
    record: Patient,
    clinician: User,
    organization: Organization,
    make_observation: Callable[..., Observation],
    fhir_client: Callable[..., Client],
) -> None:
    make_observation(record)
    response = fhir_client(clinician, "user/*.rs").get("/fhir/$export", headers=ASYNC)
    assert response.status_code == 403

    caller = system_caller()
    job = export.start_export(caller, level="system", request_url="http://testserver/fhir/$export")
    job = finish(str(job.pk))

    assert job.status == ExportJob.Status.COMPLETED
    counts = dict(job.files.values_list("resource_type", "count"))
    assert counts["Observation"] == 1 and counts["Organization"] == 1
    assert "AuditEvent" not in counts  # only when _type names it
    audited = export.start_export(
        caller, level="system", types=["AuditEvent"], request_url="http://testserver/fhir/$export"
    )
    audited = finish(str(audited.pk))
    assert audited.status == ExportJob.Status.COMPLETED, audited.error
    lines = b"".join(export.read_file(audited.files.get())).decode().splitlines()
    assert len(lines) == audited.files.get().count > 0
    for line in lines:
        validate(json.loads(line))


def test_another_caller_cannot_poll_or_download(
    record: Patient,
    clinician: User,
    outsider: User,
    fhir_client: Callable[..., Client],
) -> None:
    owner = fhir_client(clinician, "user/*.rs")
    job_id = kick(owner, _type="Patient")
    finish(job_id)
    url = manifest(owner, job_id)["output"][0]["url"]

    other = fhir_client(outsider, "user/*.rs")
    assert other.get(f"/fhir/bulk/{job_id}").status_code == 404
    assert other.get(url).status_code == 404
    assert other.delete(f"/fhir/bulk/{job_id}").status_code == 404
    assert AuditEvent.objects.filter(
        action=Action.DENIED, object_id=job_id, actor_id=outsider.pk
    ).exists()
    assert Client().get(url).status_code == 401  # a token is always needed
    assert owner.get(url).status_code == 200
    assert AuditEvent.objects.filter(
        action=Action.EXPORT, object_id=job_id, detail__fhir="bulk-download"
    ).exists()


def test_delete_cancels_and_removes_files(
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = fhir_client(clinician, "user/*.rs")
    queued = kick(client, _type="Patient")
    assert client.delete(f"/fhir/bulk/{queued}").status_code == 202
    assert client.get(f"/fhir/bulk/{queued}").status_code == 404
    assert finish(queued).status == ExportJob.Status.CANCELLED  # the late task does nothing
    assert not ExportFile.objects.filter(job_id=uuid.UUID(queued)).exists()

    done = kick(client, _type="Patient")
    finish(done)
    stored = export.storage_path(ExportFile.objects.get(job_id=uuid.UUID(done)).storage_name)
    assert stored.is_file()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"/fhir/bulk/{done}")
    assert response.status_code == 202
    assert not ExportFile.objects.filter(job_id=uuid.UUID(done)).exists()
    assert not stored.exists()
    assert client.get(f"/fhir/bulk/{done}/Patient-1.ndjson").status_code == 404


def test_at_most_five_active_jobs(
    record: Patient, clinician: User, fhir_client: Callable[..., Client]
) -> None:
    client = fhir_client(clinician, "user/*.rs")
    for _ in range(5):
        kick(client, _type="Patient")
    response = client.get("/fhir/Patient/$export", {"_type": "Patient"}, headers=ASYNC)
    assert response.status_code == 429
    assert response["Retry-After"]
    assert response.json()["resourceType"] == "OperationOutcome"
    finish(str(ExportJob.objects.first().pk))  # type: ignore[union-attr]
    kick(client, _type="Patient")  # one finished: room again


def test_progress_while_queued(
    record: Patient, clinician: User, fhir_client: Callable[..., Client]
) -> None:
    client = fhir_client(clinician, "user/*.rs")
    job_id = kick(client, _type="Patient")
    response = client.get(f"/fhir/bulk/{job_id}")
    assert response.status_code == 202
    assert response["X-Progress"] == "0% (0/0 resources)"


def test_expired_exports_are_404_then_purged(
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.FHIR_EXPORT_RETENTION_HOURS = 2
    client = fhir_client(clinician, "user/*.rs")
    job_id = kick(client, _type="Patient")
    job = finish(job_id)
    assert job.expires_at is not None
    assert dt.timedelta(hours=2) - (job.expires_at - job.finished_at) < dt.timedelta(seconds=1)  # type: ignore[operator]
    stored = export.storage_path(job.files.get().storage_name)
    url = manifest(client, job_id)["output"][0]["url"]

    ExportJob.objects.filter(pk=job_id).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert client.get(f"/fhir/bulk/{job_id}").status_code == 404
    assert client.get(url).status_code == 404

    assert stored.is_file()
    with django_capture_on_commit_callbacks(execute=True):
        assert purge_expired_exports() == 1
    assert not ExportJob.objects.filter(pk=job_id).exists()
    assert not stored.exists()


def test_failures_are_readable(
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
) -> None:
    gone = Organization.objects.create(name="Clinique fermée")
    client = fhir_client(clinician, "user/*.rs")
    job_id = kick(client, f"/fhir/Group/{gone.fhir_id}/$export", _type="Patient")
    gone.delete()

    job = finish(job_id)

    assert job.status == ExportJob.Status.FAILED
    response = client.get(f"/fhir/bulk/{job_id}")
    assert response.status_code == 500
    diagnostics = response.json()["issue"][0]["diagnostics"]
    assert "Group/" in diagnostics and "Traceback" not in diagnostics


def test_queries_do_not_grow_with_rows(
    record: Patient,
    clinician: User,
    fill: Callable[..., dict[str, Any]],  # noqa: F811
    make_observation: Callable[..., Observation],
) -> None:
    fill(record)
    caller = Caller("user", clinician, tuple(parse_scopes("user/*.rs")), "test")

    def queries() -> int:
        job = export.start_export(caller, level="patient", request_url="http://testserver/x")
        with CaptureQueriesContext(connection) as captured:
            export.run_export(job.pk, block_size=10_000)
        assert ExportJob.objects.get(pk=job.pk).status == ExportJob.Status.COMPLETED
        return len(captured)

    few = queries()
    for _ in range(20):
        fill(record)
    assert queries() <= few


def test_requested_types_must_be_readable() -> None:
    caller = system_caller("system/Observation.rs")
    with pytest.raises(FhirHttpError) as error:
        export.resolve_types(caller, "system", ["Patient"])
    assert error.value.status == 400
    assert export.resolve_types(caller, "system", None) == ["Observation"]
    assert "Practitioner" not in {t.name for t in export.exportable_types(caller, "patient")}


def test_batched_types_export_what_read_returns(
    record: Patient,
    record2: Patient,
    clinician: User,
    fill: Callable[..., dict[str, Any]],  # noqa: F811
    fhir_client: Callable[..., Client],
) -> None:
    # given full records (notes, reports, encounters, sensitive items) the clinician may see
    fill(record)
    fill(record2, " two")
    client = fhir_client(clinician, "user/*.rs")

    # when the types serialized in blocks are exported
    job_id = kick(client, _type="Observation,Encounter,Condition")
    rows = download(client, manifest(client, str(finish(job_id, block_size=2).pk)))

    # then every line is the resource a read returns, and nothing the clinician cannot read
    assert set(rows) == {"Observation", "Encounter", "Condition"}
    for resource_type, resources in rows.items():
        for resource in resources:
            read = client.get(f"/fhir/{resource_type}/{resource['id']}")
            assert read.status_code == 200
            assert resource == read.json()
        searched = client.get(f"/fhir/{resource_type}", {"_count": 500}).json()
        assert {r["id"] for r in resources} == {e["resource"]["id"] for e in searched["entry"]}
