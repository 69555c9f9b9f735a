"""The tasks area's cast on top of tests/care/conftest.py: a second nurse and a
physiotherapist on `record`'s care team, signed-in clients, and a listener of live events."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apps.accounts.models import Organization, Role, User
from apps.records.models import Patient
from apps.records.services.care_team import default_team, do_add_member


@pytest.fixture
def nurse2(make_user: Callable[..., User], organization: Organization, record: Patient) -> User:
    user = make_user(Role.NURSE, email="nurse2@example.test", organization=organization)
    do_add_member(default_team(record), user)
    return user


@pytest.fixture
def physio(make_user: Callable[..., User], organization: Organization, record: Patient) -> User:
    user = make_user(
        Role.ALLIED,
        email="physio@example.test",
        organization=organization,
        profession="Physiothérapeute",
    )
    do_add_member(default_team(record), user)
    return user
