"""Bearer tokens for the API: issued by command, revocable, dead with their user."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from apps.accounts.models import ApiToken, User
from apps.accounts.services import do_deactivate_user, do_issue_token, do_revoke_token
from apps.audit.models import Action, AuditEvent

pytestmark = pytest.mark.django_db


def get_me(secret: str) -> int:
    return Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code


def test_issue_token_prints_a_working_token(clinician: User) -> None:
    out = StringIO()

    call_command("issue_token", clinician.email, "--scope", "user/*.read", stdout=out)

    secret = out.getvalue().strip()
    response = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    assert response.json()["email"] == clinician.email
    token = ApiToken.objects.get(user=clinician)
    assert token.scopes == ["user/*.read"]
    assert secret not in (token.digest, token.prefix)  # only a digest is stored
    assert AuditEvent.objects.filter(action=Action.TOKEN_ISSUED, object_id=str(token.pk)).exists()


def test_issue_token_refuses_unknown_users_and_bad_scopes(clinician: User) -> None:
    with pytest.raises(CommandError, match="no account"):
        call_command("issue_token", "nobody@example.test")
    with pytest.raises(CommandError, match="invalid scope"):
        call_command("issue_token", clinician.email, "--scope", "drop table")


def test_a_revoked_token_stops_working(clinician: User) -> None:
    secret, token = do_issue_token(clinician)
    assert get_me(secret) == 200

    do_revoke_token(token, by=None)

    assert get_me(secret) == 401


def test_a_disabled_users_tokens_stop_working_at_once(clinician: User) -> None:
    secret, _token = do_issue_token(clinician)

    do_deactivate_user(clinician, by=None)

    assert get_me(secret) == 401
    assert ApiToken.objects.get(user=clinician).revoked_at is not None


def test_an_expired_token_is_refused(clinician: User) -> None:
    secret, _token = do_issue_token(clinician, expires_at=timezone.now() - timedelta(seconds=1))

    assert get_me(secret) == 401


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer vh_unknown", "Bearer a b", "Token vh_x", "Bearer " + "x" * 500]
)
def test_missing_or_bad_credentials_get_401(header: str) -> None:
    response = Client().get("/api/v1/me/", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert "detail" in response.json()


def test_tokens_are_listed_and_revoked_in_the_admin(admin_user: User, clinician: User) -> None:
    from tests.conftest import verified_client

    secret, token = do_issue_token(clinician, name="HIS")
    client = verified_client(admin_user)

    listing = client.get("/admin/accounts/apitoken/")
    client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )

    assert token.prefix in listing.content.decode()
    assert get_me(secret) == 401
