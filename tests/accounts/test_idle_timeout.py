from __future__ import annotations

import time
from typing import Any

import pytest

from apps.accounts.middleware import LAST_SEEN_KEY
from apps.accounts.models import User
from apps.audit.models import Action, AuditEvent
from tests.conftest import verified_client

pytestmark = pytest.mark.django_db


def age_session(client: Any, seconds: int) -> None:
    session = client.session
    session[LAST_SEEN_KEY] = time.time() - seconds
    session.save()


def test_an_idle_staff_session_ends(clinician: User, settings: Any) -> None:
    client = verified_client(clinician)
    age_session(client, settings.STAFF_IDLE_TIMEOUT + 5)

    response = client.get("/clinic/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fclinic%2F"
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(actor_id=clinician.pk, action=Action.SESSION_EXPIRED).exists()


def test_an_active_staff_session_continues(clinician: User, settings: Any) -> None:
    client = verified_client(clinician)
    age_session(client, settings.STAFF_IDLE_TIMEOUT - 60)

    assert client.get("/clinic/").status_code == 200
    assert client.session[LAST_SEEN_KEY] > time.time() - 5


def test_the_api_answers_401_after_the_timeout(clinician: User, settings: Any) -> None:
    client = verified_client(clinician)
    age_session(client, settings.STAFF_IDLE_TIMEOUT + 5)

    assert client.get("/api/v1/me/").status_code == 401


def test_patients_have_no_idle_timeout(patient: User, settings: Any) -> None:
    client = verified_client(patient)
    age_session(client, settings.STAFF_IDLE_TIMEOUT * 4)

    assert client.get("/").status_code == 200


def test_staff_pages_carry_the_warning(clinician: User) -> None:
    page = verified_client(clinician).get("/clinic/").content.decode()

    assert "data-idle-timeout" in page
    assert 'id="idle-dialog"' in page
