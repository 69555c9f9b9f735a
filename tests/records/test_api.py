"""REST API of the record: the same gate as the pages (404 + audited denial)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.urls import reverse

from apps.accounts.models import User
from apps.accounts.services import do_issue_token
from apps.audit.models import AuditEvent
from apps.records.models import Observation, Patient
from tests.conftest import signed_in_client, verified_client


def test_care_team_member_reads_patient_and_observations(
    record: Patient, record2: Patient, clinician: User, make_observation: Callable[..., Observation]
) -> None:
    make_observation(record, value=88)
    client = verified_client(clinician)
    listing = client.get(reverse("api:patient-list")).json()
    assert {p["id"] for p in listing["results"]} == {record.pk, record2.pk}
    data = client.get(reverse("api:patient-observations", args=[record.pk])).json()
    assert data["count"] == 1 and data["results"][0]["code"] == "8867-4"
    assert AuditEvent.objects.filter(detail__what="api-observations", outcome="success").exists()


@pytest.mark.parametrize("who", ["outsider", "patient2", "admin_user"])
def test_outsiders_get_404_and_a_denial_row(
    who: str, record: Patient, request: pytest.FixtureRequest
) -> None:
    user: User = request.getfixturevalue(who)
    client = verified_client(user) if user.is_staff_member else signed_in_client(user)
    for name in ("api:patient-detail", "api:patient-observations"):
        response = client.get(reverse(name, args=[record.pk]))
        assert response.status_code == 404
        assert AuditEvent.objects.order_by("-seq").first().action == "denied"  # type: ignore[union-attr]


def test_billing_sees_identity_but_not_observations(record: Patient, billing_user: User) -> None:
    client = verified_client(billing_user)
    assert client.get(reverse("api:patient-detail", args=[record.pk])).status_code == 200
    response = client.get(reverse("api:patient-observations", args=[record.pk]))
    assert response.status_code == 404


def test_bearer_token_of_a_patient_lists_only_themself(record: Patient, patient: User) -> None:
    secret, _token = do_issue_token(patient, name="app")
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    listing = client.get(reverse("api:patient-list")).json()
    assert [p["id"] for p in listing["results"]] == [record.pk]
