"""Password guessing is throttled per account and per address; X-Forwarded-For cannot reset it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent, Outcome
from apps.core.net import client_ip_from
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def attempt(client: Client, email: str, password: str, forwarded_for: str) -> Any:
    return client.post(
        "/accounts/login/",
        {"login": email, "password": password},
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


def test_the_right_password_signs_in_and_is_audited(patient: User) -> None:
    client = Client()

    response = attempt(client, patient.email, PASSWORD, "203.0.113.1")

    assert response.status_code == 302
    assert AuditEvent.objects.filter(actor_id=patient.pk, action=Action.LOGIN).exists()


def test_failed_logins_are_throttled_even_with_spoofed_forwarded_for(patient: User) -> None:
    client = Client()
    for n in range(5):  # LOGIN_ATTEMPTS_LIMIT
        response = attempt(client, patient.email, "wrong password", f"198.51.100.{n}")
        assert response.status_code == 200

    # given a new spoofed address each time, the account is still locked
    response = attempt(client, patient.email, PASSWORD, "192.0.2.77")

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(
        action=Action.LOGIN_FAILED, outcome=Outcome.DENIED, detail__email=patient.email
    ).exists()
    failures = AuditEvent.objects.filter(action=Action.LOGIN_FAILED, outcome=Outcome.FAILURE)
    # the audited address is the connection's, not the spoofed header's
    assert set(failures.values_list("ip", flat=True)) == {"127.0.0.1"}


def test_one_address_cannot_spray_many_accounts(make_user: Any) -> None:
    users = [make_user() for _ in range(11)]
    client = Client()
    for user in users[:10]:  # the per-address limit is twice the per-account limit
        attempt(client, user.email, "wrong password", "203.0.113.9")

    response = attempt(client, users[10].email, PASSWORD, "203.0.113.10")

    assert "_auth_user_id" not in client.session
    assert response.status_code == 200


def test_client_address_is_taken_through_the_trusted_proxies_only() -> None:
    # no trusted proxy: the header is ignored
    assert client_ip_from("10.0.0.1", "1.2.3.4", 0) == "10.0.0.1"
    # one trusted proxy: the address it saw connecting, not what the client wrote before it
    assert client_ip_from("10.0.0.1", "6.6.6.6, 1.2.3.4", 1) == "1.2.3.4"
    assert client_ip_from("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2", 2) == "1.2.3.4"
    # garbage never becomes an address
    assert client_ip_from("10.0.0.1", "not-an-ip", 1) is None
