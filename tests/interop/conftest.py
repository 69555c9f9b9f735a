"""FHIR API cast: tokens with SMART scopes for the shared cast of tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.accounts.services import do_issue_token

# The record cast (patients with charts, a care team, codes) serves the API tests too.
from tests.records.conftest import *  # noqa: E402, F403


@pytest.fixture
def fhir_client() -> Callable[..., Client]:
    """A Django test client that sends a bearer token for `user` with `scopes`."""

    def make(user: User, *scopes: str) -> Client:
        secret, _token = do_issue_token(user, name="fhir test", scopes=list(scopes))
        return Client(HTTP_AUTHORIZATION=f"Bearer {secret}", HTTP_ACCEPT="application/fhir+json")

    return make


def entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["resource"] for entry in bundle.get("entry", [])]
