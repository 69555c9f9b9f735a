"""Administrators create staff accounts; the new member chooses a password from a one-time link."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from apps.accounts.models import Role, User
from tests.conftest import verified_client

pytestmark = pytest.mark.django_db(transaction=True)  # the email leaves on commit


def invite_nurse(admin_user: User) -> str:
    client = verified_client(admin_user)
    response = client.post(
        "/admin/accounts/user/add/",
        {
            "email": "New.Nurse@Example.test",
            "first_name": "Nina",
            "last_name": "Nurse",
            "role": Role.NURSE,
            "profession": "",
            "organization": admin_user.organization_id,
            "preferred_language": "fr",
            "phone": "",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    (message,) = mail.outbox
    assert message.to == ["new.nurse@example.test"]
    match = re.search(r"http://\S+/accounts/invitation/(\S+)/", message.body)
    assert match, message.body
    return f"/accounts/invitation/{match.group(1)}/"


def test_an_invited_nurse_sets_a_password_then_must_set_up_2fa(admin_user: User) -> None:
    link = invite_nurse(admin_user)
    nurse = User.objects.get(email="new.nurse@example.test")
    assert not nurse.has_usable_password()
    client = Client()

    response = client.post(
        link, {"new_password1": "a fine long passphrase", "new_password2": "a fine long passphrase"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/setup/"
    assert client.get("/clinic/")["Location"].startswith("/accounts/2fa/setup/")
    nurse.refresh_from_db()
    assert nurse.check_password("a fine long passphrase")


def test_an_invitation_link_works_once(admin_user: User) -> None:
    link = invite_nurse(admin_user)
    data = {"new_password1": "a fine long passphrase", "new_password2": "a fine long passphrase"}
    Client().post(link, data)

    response = Client().post(link, data)

    assert response.status_code == 404


def test_a_weak_password_is_refused_with_a_message(admin_user: User) -> None:
    link = invite_nurse(admin_user)

    response = Client().post(link, {"new_password1": "12345", "new_password2": "12345"})

    assert response.status_code == 200
    assert response.context["form"].errors


def test_a_made_up_link_is_404() -> None:
    assert Client().get("/accounts/invitation/not-a-real-secret/").status_code == 404
