"""The shared cast and test-wide settings.

Services: with CI=true every test that needs PostgreSQL, Redis or Mosquitto fails (never skips)
when the service is unreachable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.core.cache import cache
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import Organization, Role, User
from apps.notifications.sms import LocmemSmsBackend

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _test_settings(settings: Any) -> Iterator[None]:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SMS_BACKEND = "apps.notifications.sms.LocmemSmsBackend"
    from virtualhospital.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    LocmemSmsBackend.outbox.clear()
    cache.clear()
    yield


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture
def organization(db: None) -> Organization:
    return Organization.objects.create(name="Hôpital de test", gln="7601000000099")


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    counter = {"n": 0}

    def make(role: str = Role.PATIENT, **fields: Any) -> User:
        counter["n"] += 1
        fields.setdefault("email", f"{role}{counter['n']}@example.test")
        fields.setdefault("first_name", role.title())
        fields.setdefault("last_name", f"Test{counter['n']}")
        user = User.objects.create_user(password=PASSWORD, role=role, **fields)
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
        return user

    return make


@pytest.fixture
def patient(make_user: Callable[..., User]) -> User:
    return make_user(Role.PATIENT, email="patient@example.test")


@pytest.fixture
def patient2(make_user: Callable[..., User]) -> User:
    return make_user(Role.PATIENT, email="patient2@example.test")


@pytest.fixture
def clinician(make_user: Callable[..., User], organization: Organization) -> User:
    return make_user(Role.PHYSICIAN, email="doctor@example.test", organization=organization)


@pytest.fixture
def outsider(make_user: Callable[..., User], organization: Organization) -> User:
    """A clinician of the same hospital who is on no care team of the patients above."""
    return make_user(Role.PHYSICIAN, email="outsider@example.test", organization=organization)


@pytest.fixture
def billing_user(make_user: Callable[..., User], organization: Organization) -> User:
    return make_user(Role.BILLING, email="billing@example.test", organization=organization)


@pytest.fixture
def admin_user(make_user: Callable[..., User], organization: Organization) -> User:
    return make_user(Role.ADMIN, email="admin@example.test", organization=organization)


def add_totp(user: User) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="test", confirmed=True)


def current_code(device: TOTPDevice) -> str:
    from django_otp.oath import totp

    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


def verified_client(user: User) -> Client:
    """A client signed in as `user` whose session passed the second factor."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or add_totp(user)
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def signed_in_client(user: User) -> Client:
    """Signed in with the password only (no second factor)."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client
