"""Staff see nothing behind the login until their second factor is verified in this session."""

from __future__ import annotations

import html
from collections.abc import Callable

import pytest
from django.test import Client
from django.utils.translation import gettext

from apps.accounts.models import Role, User
from apps.audit.models import Action, AuditEvent
from tests.conftest import add_totp, current_code, signed_in_client, verified_client

pytestmark = pytest.mark.django_db

PROTECTED = ["/clinic/", "/admin/", "/notifications/", "/api/v1/me/", "/api/v1/notifications/"]


@pytest.mark.parametrize("path", PROTECTED)
def test_staff_without_a_device_is_sent_to_set_one_up(admin_user: User, path: str) -> None:
    client = signed_in_client(admin_user)

    response = client.get(path)

    if path.startswith("/api/"):
        assert response.status_code == 403
        assert response.json()["detail"] == gettext(
            "Two-factor verification is required for this account."
        )
    else:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/2fa/setup/")


@pytest.mark.parametrize("path", PROTECTED)
def test_staff_with_an_unverified_session_must_verify(admin_user: User, path: str) -> None:
    add_totp(admin_user)
    client = signed_in_client(admin_user)

    response = client.get(path)

    if path.startswith("/api/"):
        assert response.status_code == 403
    else:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/2fa/verify/")


@pytest.mark.parametrize("path", PROTECTED)
def test_verified_staff_get_the_pages(admin_user: User, path: str) -> None:
    client = verified_client(admin_user)

    response = client.get(path)

    assert response.status_code == 200


def test_verified_non_admin_staff_do_not_get_the_admin(clinician: User) -> None:
    client = verified_client(clinician)

    assert client.get("/clinic/").status_code == 200
    assert client.get("/admin/", follow=True).status_code == 404


def test_a_patient_without_2fa_uses_the_portal(patient: User) -> None:
    client = signed_in_client(patient)

    assert client.get("/").status_code == 200
    assert client.get("/notifications/").status_code == 200
    assert client.get("/api/v1/me/").json()["email"] == patient.email


def test_a_patient_does_not_get_the_clinic(patient: User) -> None:
    client = signed_in_client(patient)

    assert client.get("/clinic/").status_code == 404


def test_a_patient_who_turned_2fa_on_must_verify(patient: User) -> None:
    add_totp(patient)
    client = signed_in_client(patient)

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/2fa/verify/")


def test_entering_the_code_opens_the_clinic_and_is_audited(clinician: User) -> None:
    device = add_totp(clinician)
    client = signed_in_client(clinician)

    response = client.post(
        "/accounts/2fa/verify/", {"token": current_code(device), "next": "/clinic/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/clinic/"
    assert client.get("/clinic/").status_code == 200
    assert AuditEvent.objects.filter(actor_id=clinician.pk, action=Action.OTP_VERIFIED).exists()


def test_a_wrong_code_is_refused_and_audited(clinician: User) -> None:
    add_totp(clinician)
    client = signed_in_client(clinician)

    response = client.post("/accounts/2fa/verify/", {"token": "000000"})

    assert response.status_code == 200
    assert AuditEvent.objects.filter(actor_id=clinician.pk, action=Action.OTP_FAILED).count() == 1
    assert client.get("/clinic/").status_code == 302


def test_code_guessing_is_throttled(clinician: User, settings: object) -> None:
    device = add_totp(clinician)
    client = signed_in_client(clinician)
    for _ in range(5):  # OTP_ATTEMPTS_LIMIT
        client.post("/accounts/2fa/verify/", {"token": "000000"})

    # even the right code is refused while throttled
    response = client.post("/accounts/2fa/verify/", {"token": current_code(device)})

    assert response.status_code == 200
    assert gettext("Too many attempts. Wait a few minutes and try again.") in html.unescape(
        response.content.decode()
    )
    assert client.get("/clinic/").status_code == 302


def test_setting_up_totp_confirms_the_device_and_shows_backup_codes(
    make_user: Callable[..., User],
) -> None:
    nurse = make_user(Role.NURSE)
    client = signed_in_client(nurse)
    client.get("/accounts/2fa/setup/")
    device = nurse.totpdevice_set.get(confirmed=False)

    response = client.post("/accounts/2fa/setup/", {"token": current_code(device)})

    assert response.status_code == 200
    assert len(response.context["codes"]) == 10
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/clinic/").status_code == 200
    assert AuditEvent.objects.filter(actor_id=nurse.pk, action=Action.OTP_ENABLED).exists()


def test_a_backup_code_works_once(clinician: User) -> None:
    add_totp(clinician)
    client = verified_client(clinician)
    codes = client.post("/accounts/2fa/backup-codes/").context["codes"]
    fresh = signed_in_client(clinician)

    first = fresh.post("/accounts/2fa/verify/", {"token": codes[0], "next": "/clinic/"})
    again = Client()
    again.force_login(clinician, backend="django.contrib.auth.backends.ModelBackend")
    second = again.post("/accounts/2fa/verify/", {"token": codes[0]})

    assert first.status_code == 302
    assert second.status_code == 200  # refused: already used


def test_staff_cannot_turn_2fa_off(clinician: User) -> None:
    client = verified_client(clinician)

    client.post("/accounts/2fa/disable/")

    assert clinician.totpdevice_set.filter(confirmed=True).exists()


def test_a_patient_can_turn_2fa_off(patient: User) -> None:
    client = verified_client(patient)

    client.post("/accounts/2fa/disable/")

    assert not patient.totpdevice_set.exists()
    assert client.get("/").status_code == 200
