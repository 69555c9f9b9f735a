"""Patient/<id>/$everything and Binary/<id>: compartments, _since, paging, permission checks."""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.records.access import get_patient_for_user
from apps.records.models import CareTeam, DocumentReference, Observation, Patient
from apps.records.services.documents import do_upload_document
from tests.interop.conftest import entries


@pytest.fixture(autouse=True)
def _media(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def document(record: Patient, clinician: User) -> DocumentReference:
    access = get_patient_for_user(clinician, record.pk, action=None)
    return do_upload_document(
        access, SimpleUploadedFile("wound.png", _png()), title="Wound", category="photo"
    )


@pytest.fixture
def chart(
    record: Patient,
    record2: Patient,
    make_observation: Callable[..., Observation],
) -> list[Observation]:
    """Three observations of `record`, one of `record2`."""
    make_observation(record2, value=99)
    return [make_observation(record, value=60 + i) for i in range(3)]


def _types(bundle: dict[str, Any]) -> list[str]:
    return [resource["resourceType"] for resource in entries(bundle)]


def test_patient_gets_their_compartment(
    chart: list[Observation],
    record: Patient,
    patient: User,
    fhir_client: Callable[..., Client],
) -> None:
    api = fhir_client(patient, "patient/*.rs")
    response = api.get(f"/fhir/Patient/{record.fhir_id}/$everything")
    assert response.status_code == 200, response.content
    bundle = response.json()
    assert bundle["type"] == "searchset"
    types = _types(bundle)
    assert types[0] == "Patient" and entries(bundle)[0]["id"] == str(record.fhir_id)
    assert types.count("Observation") == 3 and "CareTeam" in types
    assert bundle["total"] == len(types)
    observation_ids = {r["id"] for r in entries(bundle) if r["resourceType"] == "Observation"}
    assert observation_ids == {str(o.fhir_id) for o in chart}
    event = AuditEvent.objects.filter(detail__fhir="everything").get()
    assert event.patient_id == str(record.pk) and event.outcome == "success"


def test_other_patients_and_outsiders_get_404(
    chart: list[Observation],
    record2: Patient,
    patient: User,
    outsider: User,
    fhir_client: Callable[..., Client],
) -> None:
    for api in (fhir_client(patient, "patient/*.rs"), fhir_client(outsider, "user/*.rs")):
        response = api.get(f"/fhir/Patient/{record2.fhir_id}/$everything")
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"
    denied = AuditEvent.objects.filter(detail__fhir="everything", outcome="denied")
    assert denied.count() == 2


def test_only_the_types_the_scopes_allow(
    chart: list[Observation],
    record: Patient,
    clinician: User,
    fhir_client: Callable[..., Client],
) -> None:
    api = fhir_client(clinician, "user/Patient.rs", "user/Observation.rs")
    bundle = api.get(f"/fhir/Patient/{record.fhir_id}/$everything").json()
    assert set(_types(bundle)) == {"Patient", "Observation"}
    assert (
        fhir_client(clinician, "user/Observation.rs")
        .get(f"/fhir/Patient/{record.fhir_id}/$everything")
        .status_code
        == 403
    )


def test_since_and_type(
    chart: list[Observation],
    record: Patient,
    patient: User,
    fhir_client: Callable[..., Client],
) -> None:
    # given everything but the newest observation was last updated a week ago
    week_ago = timezone.now() - dt.timedelta(days=7)
    Patient.objects.update(updated_at=week_ago)
    Observation.objects.update(updated_at=week_ago)
    CareTeam.objects.update(updated_at=week_ago)
    fresh = chart[-1]
    Observation.objects.filter(pk=fresh.pk).update(updated_at=timezone.now())
    api = fhir_client(patient, "patient/*.rs")
    since = (timezone.now() - dt.timedelta(days=1)).isoformat()
    # when
    bundle = api.get(f"/fhir/Patient/{record.fhir_id}/$everything", {"_since": since}).json()
    # then
    assert [r["id"] for r in entries(bundle)] == [str(fresh.fhir_id)]
    only = api.get(f"/fhir/Patient/{record.fhir_id}/$everything", {"_type": "Observation"})
    assert set(_types(only.json())) == {"Observation"} and only.json()["total"] == 3
    for bad in ({"_since": "yesterday"}, {"_since": "2026-01-01"}, {"_type": "AuditEvent"}):
        response = api.get(f"/fhir/Patient/{record.fhir_id}/$everything", bad)
        assert response.status_code == 400
        assert response.json()["issue"][0]["expression"] == [next(iter(bad))]


def test_paging_links_walk_every_resource_once(
    chart: list[Observation],
    record: Patient,
    patient: User,
    fhir_client: Callable[..., Client],
) -> None:
    api = fhir_client(patient, "patient/*.rs")
    url: str | None = f"/fhir/Patient/{record.fhir_id}/$everything?_count=2"
    seen: list[str] = []
    pages = 0
    total = 0
    while url:
        bundle = api.get(url).json()
        total = bundle["total"]
        assert len(bundle.get("entry", [])) <= 2
        seen.extend(f"{r['resourceType']}/{r['id']}" for r in entries(bundle))
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        if pages:
            assert "previous" in links
        url = links.get("next")
        pages += 1
        assert pages <= 10
    assert len(seen) == len(set(seen)) == total >= 5
    assert pages == (total + 1) // 2


def test_binary_download_is_permission_checked(
    document: DocumentReference,
    patient: User,
    patient2: User,
    outsider: User,
    fhir_client: Callable[..., Client],
) -> None:
    url = f"/fhir/Binary/{document.fhir_id}"
    api = fhir_client(patient, "patient/*.rs")
    # raw bytes with their content type
    raw = api.get(url, HTTP_ACCEPT="*/*")
    assert raw.status_code == 200
    # asking for the file's own type is fine too
    assert api.get(url, HTTP_ACCEPT="image/png").content == raw.content
    assert raw["Content-Type"] == "image/png"
    assert raw.content[:8] == b"\x89PNG\r\n\x1a\n"
    # or a Binary resource
    resource = api.get(url).json()
    assert resource["resourceType"] == "Binary" and resource["contentType"] == "image/png"
    assert base64.b64decode(resource["data"]) == raw.content
    assert resource["securityContext"] == {"reference": f"DocumentReference/{document.fhir_id}"}
    # others may not know it exists
    for other in (fhir_client(patient2, "patient/*.rs"), fhir_client(outsider, "user/*.rs")):
        response = other.get(url)
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"
    # a token without DocumentReference read scope
    assert fhir_client(patient, "patient/Observation.rs").get(url).status_code == 403
    assert AuditEvent.objects.filter(detail__fhir="binary", outcome="success").count() == 3
    assert AuditEvent.objects.filter(detail__fhir="binary", outcome="denied").count() == 2
